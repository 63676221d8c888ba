"""Reading JSON a person hands us (ground truths, thresholds, saved results, similarities): one decoder
whose every failure is one line naming the file.

json.loads alone lets three things through as tracebacks or vague errors: arrays nested a thousand levels
deep (RecursionError), bytes that are not UTF-8 (UnicodeDecodeError) and syntax errors far into a file.
`parse_json` turns each into a ValueError subclass with the line and column; `read_json` also reads the
file and raises the caller's own error class. A UTF-8 byte-order mark (Windows editors write one) is skipped.
Library code: the standard library and the package's errors.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ConfigError, S2VSError


class InvalidJSON(ValueError):
    """Text that is not JSON s2vs can read; the message says where and why, on one line."""


def parse_json(data: str | bytes) -> Any:
    """The JSON value of `data` (bytes are decoded as UTF-8); InvalidJSON (one line) when it is not one."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InvalidJSON(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    try:
        return json.loads(data.removeprefix("\ufeff"))
    except json.JSONDecodeError as e:
        raise InvalidJSON(f"line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:  # json's C decoder recurses once per [ or {: about 1,000 levels is the limit
        raise InvalidJSON("arrays or objects nested too deeply to read") from None


def read_json(path: str | Path, what: str = "JSON file", error: type[S2VSError] = ConfigError, hint: str = "") -> Any:
    """The JSON value in `path`, a `what` (e.g. "thresholds file"): S2VSError when it is missing (`hint`
    added) or cannot be read (exit 1, as any missing input), `error` when it is not valid JSON; both one line
    naming it."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder; give the {what}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise S2VSError(f"{path}: {what} not found{hint}") from None
    except OSError as e:
        raise S2VSError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return parse_json(data)
    except InvalidJSON as e:
        raise error(f"{path}: not valid JSON ({e})") from None
