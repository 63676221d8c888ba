"""Reading a YAML configuration file as a person means it: `1e-3` is a number, a repeated key is an error.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: `1e-3`, `1E5` and `-2.5e-1` are
read as strings (and then refused as "expected float"). Here any decimal number with an exponent is a
number, as in YAML 1.2 and JSON; one whose value is whole (`1e5`, `2.5e4`) is an int, so it also fills an
integer option (an int fills a float option anyway). A key given twice in one mapping, at any level, is
refused with both lines, where PyYAML silently keeps the last value. Every failure is one ConfigError line
naming the file. Library code: PyYAML and the package's errors.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

FLOAT_TAG = "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"
# A decimal number with an exponent, the sign of the exponent optional, the dot too (YAML 1.2 / JSON style).
EXPONENT_NUMBER = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
LARGEST_WHOLE = 2 ** 53  # floats are exact integers up to here


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads exponent numbers as numbers and refuses repeated keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        """The mapping of `node`; a ConstructorError at the second of two equal keys."""
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:  # `<<: *defaults` may be overridden by the keys beside it
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first_line.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                if line != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"repeated key '{key}' (first given at line {line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_number(self, node: yaml.ScalarNode) -> int | float:
        """A float, or an int when written with an exponent and whole (`1e5` is 100000)."""
        value = self.construct_yaml_float(node)
        if "e" in node.value.lower() and value.is_integer() and abs(value) <= LARGEST_WHOLE:
            return int(value)
        return value


ConfigLoader.add_implicit_resolver(FLOAT_TAG, EXPONENT_NUMBER, list("-+0123456789."))
ConfigLoader.add_constructor(FLOAT_TAG, ConfigLoader.construct_number)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or ConfigError (one line naming the file) saying why not."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({e})") from None
    try:
        data = yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}" + (f": {problem}" if problem else "")) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: lists or mappings nested too deeply to read") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
    return data
