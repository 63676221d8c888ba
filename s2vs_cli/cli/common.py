"""What every command shares: the consoles, one-line errors with exit codes, config loading, output files."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..atomic import OutputWriteError, check_writable as check_path_writable, write_text_atomically
from ..config import build_config, config_to_yaml
from ..errors import ConfigError, S2VSError

T = TypeVar("T")

console = Console(stderr=True)   # progress, tables for people and errors: stderr keeps stdout clean for data
stdout = Console()               # tables a user may pipe or redirect

EXIT_ERROR = 1
EXIT_USAGE = 2
# C0 controls, DEL and C1 controls: a terminal acts on them (clears the screen, sets the title, ...).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: object) -> str:
    """`text` (a name from the data: an id, a path, a message holding one) as rich markup that prints it
    as it is: every control character shown as `\\xNN`, square brackets not read as markup."""
    return escape(_CONTROLS.sub(lambda control: f"\\x{ord(control.group()):02x}", str(text)))


@contextlib.contextmanager
def reported_errors(interrupted: str = "") -> Iterator[None]:
    """Turn library errors into one line on stderr and a non-zero exit status (never a traceback).

    `interrupted` is added to the message shown on Ctrl-C (e.g. how to resume).
    """
    try:
        yield
    except ConfigError as e:
        _print_error(e)
        raise typer.Exit(EXIT_USAGE) from None
    except S2VSError as e:
        _print_error(e)
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as e:  # the file system refused something the library did not foresee
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _print_error(Exception(f"{where}{e.strerror or e}"))
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]" + (f"; {terminal_safe(interrupted)}" if interrupted else ""),
                      highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def print_table(table: Any) -> None:
    """Print a rich renderable on stdout; piped or redirected, without the spaces that pad its lines."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    with stdout.capture() as captured:
        stdout.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()  # before the notes that follow on stderr, so a merged log keeps the order


def quiet_hdf5_cleanup() -> None:
    """Keep HDF5's after-effects of a failed write (a full disk) off the terminal: once a write has failed
    and been reported in one line, every HDF5 object of that file fails to close too, and h5py prints
    each as a traceback (through both hooks below) when the object is freed."""
    if getattr(sys.unraisablehook, "s2vs_filter", False):
        return
    default_unraisable, default_except = sys.unraisablehook, sys.excepthook

    def from_h5py_cleanup(error: BaseException | None, traceback) -> bool:
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        where = traceback.tb_frame.f_code.co_filename if traceback is not None else ""
        return isinstance(error, (RuntimeError, OSError)) and "h5py" in where

    def unraisable_hook(unraisable) -> None:
        if not ("h5py" in str(unraisable.object) and isinstance(unraisable.exc_value, (RuntimeError, OSError))):
            default_unraisable(unraisable)

    def except_hook(kind, error, traceback) -> None:
        if not from_h5py_cleanup(error, traceback):
            default_except(kind, error, traceback)

    unraisable_hook.s2vs_filter = True
    sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook


def _print_error(error: Exception) -> None:
    # soft_wrap: the message stays one line however narrow the terminal, so it can be grepped and copied.
    console.print(f"[bold red]error:[/] {terminal_safe(error)}", highlight=False, soft_wrap=True)


def load_config(cls: type[T], config_file: str | None, print_config: bool, *, relative_to_file: bool = True,
                **flags: Any) -> T:
    """Defaults <- YAML <- flags; with --print-config show the result and exit (else the file's input paths
    must exist). `relative_to_file`: see config.build_config."""
    config = build_config(cls, config_file, flags, relative_to_file=relative_to_file,
                          check_inputs=relative_to_file and not print_config)
    if print_config:
        sys.stdout.write(config_to_yaml(config))
        raise typer.Exit(0)
    return config


# Parameters named otherwise than their config field (the field's name is a Python builtin or keyword).
_FIELDS = {"compile_cnn": "compile", "id_list": "list", "image_format": "format"}


def command_config(cls: type[T], given: dict[str, Any], *, relative_to_file: bool = True) -> T:
    """load_config with a command's parameters (`given`: its `locals() | shared`): --config, --print-config and
    every parameter that is a field of `cls`, so an option is written in the signature and the dataclass only."""
    fields = {field.name for field in dataclasses.fields(cls)}
    flags = {_FIELDS.get(name, name): value for name, value in given.items() if _FIELDS.get(name, name) in fields}
    return load_config(cls, given["config"], given["print_config"], relative_to_file=relative_to_file, **flags)


def check_writable(*outputs: str | None, made: tuple[str | None, ...] = (),
                   folders: tuple[str | None, ...] = ()) -> None:
    """Fail before any work (exit 1, one line) when an output cannot be written: files whose folder must exist
    (`outputs`), files whose writer makes missing folders (`made`) and folders (`folders`); atomic.check_writable
    is the one check every output option goes through."""
    for paths, options in ((outputs, {}), (made, {"parents": True}), (folders, {"folder": True})):
        for path in paths:
            if path is not None:
                check_path_writable(path, **options)


def write_results(output: str | None, summary: dict) -> None:
    """`--output FILE`: every number as indented JSON (nothing when no file was asked for)."""
    if output is None:
        return
    try:
        write_text_atomically(output, json.dumps(summary, indent=1) + "\n")
    except OutputWriteError as e:
        raise S2VSError(f"{output}: cannot write results ({e.reason})") from None
