"""Checks the commands run on their arguments before any work, so a mistake costs nothing.

Each returns an error sentence (naming the option, the value and what is valid) or ``None``;
the commands print it as one line and exit 2. Numbers are checked by argparse itself, through
:func:`at_least`, so ``--n 0`` is a usage error before anything is imported.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an int ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not valid; pass a whole number >= {low}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _parent_problem(option: str, path: Path) -> str | None:
    """Whether ``path``'s folder exists or can be made, and can be written."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        return f"{option} {str(path)!r}: {str(base)!r} is a file, not a folder; choose a path inside a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{option} {str(path)!r}: the folder {str(base)!r} is not writable; choose a folder you can write"
    return None


def out_file(option: str, path: str | Path, overwrite: bool, suffixes: Sequence[str] | None = None) -> str | None:
    """An output file: a valid suffix, not a folder, its folder a writable folder, and not
    already there unless ``overwrite`` (then it must be writable itself)."""
    p = Path(path)
    if str(path).strip() == "":
        return f"{option} is empty; pass a file path"
    if suffixes and p.suffix.lower() not in suffixes:
        return f"{option} {str(path)!r} must end in {' or '.join(suffixes)}"
    if p.is_dir():
        return f"{option} {str(path)!r} is a folder; pass a file path inside it, e.g. {str(p / ('out' + (suffixes or [''])[0]))!r}"
    problem = _parent_problem(option, p)
    if problem:
        return problem
    if os.path.lexists(p):
        if not overwrite:
            return f"{option} {str(path)!r} exists; pass --overwrite to replace it (nothing was done)"
        if not os.access(p.parent, os.W_OK):
            return f"{option} {str(path)!r} cannot be replaced: its folder is not writable"
    return None


def out_folder(option: str, path: str | Path) -> str | None:
    """An output folder: empty string, a file in its place, or an unwritable parent are errors
    (whether an existing folder may be replaced is the command's own rule)."""
    p = Path(path)
    if str(path).strip() == "":
        return f"{option} is empty; pass a folder path"
    if os.path.lexists(p) and not p.is_dir():
        return f"{option} {str(path)!r} exists and is not a folder; choose a folder path"
    return _parent_problem(option, p)


__all__ = ["at_least", "out_file", "out_folder"]
