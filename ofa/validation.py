"""Up-front checks of command-line arguments and paths, before any work.

Every function raises an :class:`~ofa.errors.OFAError` subclass whose message
names the offending value and what is allowed. The numeric checks double as
argparse ``type=`` callables (their error is also an
``argparse.ArgumentTypeError``, so argparse prints our message), and
:class:`ArgumentParser` turns argparse's own usage errors into exit status 2
with ``error: ConfigError: ...`` like every other user error.

Paths:

* :func:`check_input_file` / :func:`check_input_dir`: the input exists and is
  a file (directory); a directory passed as a file is named as such.
* :func:`check_output_path`: the output is not one of the command's inputs,
  is not an existing file of another kind (a checkpoint, a predictor, a
  profile, ...) unless ``overwrite``, is a file where a file is expected (a
  directory where a directory is), and its location is writable — all checked
  before the command starts, so no work is lost to a bad ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from .errors import ConfigError


class PathError(ConfigError):
    """An input path is missing or of the wrong kind, or an output path would
    overwrite an input or a valuable file, or cannot be written."""


class ArgumentValueError(ConfigError, argparse.ArgumentTypeError):
    """A command-line value outside what the option allows (an argparse ``type=`` failure)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors read ``error: ConfigError: ...`` (exit status 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: ConfigError: {message}\n")


# --- numbers ------------------------------------------------------------------------------------------
def _number(text, what: str, kind=float):
    if isinstance(text, bool):
        raise ArgumentValueError(f"{what} must be a number, got {text!r}")
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ArgumentValueError(f"{what} must be {'an integer' if kind is int else 'a number'}, "
                                 f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise ArgumentValueError(f"{what} must be a finite number, got {text!r}")
    return value


def finite_float(text, what: str = "value") -> float:
    """Any finite number (NaN and infinities refused)."""
    return _number(text, what)


def _in_range(text, what: str, kind, ok, allowed: str):
    value = _number(text, what, kind)
    if not ok(value):
        raise ArgumentValueError(f"{what} = {text!r} is not allowed: must be {allowed}")
    return value


def positive_int(text, what: str = "value") -> int:
    """An integer >= 1."""
    return _in_range(text, what, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text, what: str = "value") -> int:
    """An integer >= 0."""
    return _in_range(text, what, int, lambda v: v >= 0, "an integer >= 0")


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def check(text, what: str = "value") -> int:
        return _in_range(text, what, int, lambda v: v >= minimum, f"an integer >= {minimum}")
    check.__name__ = f"int>={minimum}"
    return check


def positive_float(text, what: str = "value") -> float:
    """A finite number > 0."""
    return _in_range(text, what, float, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text, what: str = "value") -> float:
    """A finite number >= 0."""
    return _in_range(text, what, float, lambda v: v >= 0, "a finite number >= 0")


def fraction(text, what: str = "value") -> float:
    """A number strictly between 0 and 1."""
    return _in_range(text, what, float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")


def holdout_fraction(text, what: str = "value") -> float:
    """A share to hold out: a number from 0 (hold nothing out) up to, not including, 1."""
    return _in_range(text, what, float, lambda v: 0 <= v < 1, "a fraction from 0 (hold nothing out) up to, not "
                                                               "including, 1")


def float_between(low: float, high: float, *, closed: bool = False):
    """An argparse type: a finite number strictly between ``low`` and ``high`` (or within
    them, ends included, when ``closed``)."""
    allowed = f"a number from {low:g} to {high:g}" if closed else f"a number strictly between {low:g} and {high:g}"

    def check(text, what: str = "value") -> float:
        return _in_range(text, what, float, (lambda v: low <= v <= high) if closed else (lambda v: low < v < high),
                         allowed)
    check.__name__ = f"float in {'[' if closed else '('}{low:g}, {high:g}{']' if closed else ')'}"
    return check


def choice(allowed: Iterable[str]):
    """An argparse type: one of ``allowed`` (with a "did you mean" hint)."""
    allowed = tuple(allowed)

    def check(text, what: str = "value") -> str:
        if text not in allowed:
            import difflib

            close = difflib.get_close_matches(str(text), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ArgumentValueError(f"{what} = {text!r} is not allowed{hint}; allowed: {list(allowed)}")
        return text
    check.__name__ = "choice"
    return check


# --- what a file holds ----------------------------------------------------------------------------------
def sniff_kind(path: str | os.PathLike) -> str:
    """What ``path`` holds, from its first bytes: ``"missing"``, ``"directory"``,
    ``"empty"``, ``"checkpoint"`` (torch zip), ``"predictor"`` (skops zip), ``"zip"``,
    ``"png"``, ``"profile"`` (JSONL with a profile header), ``"evaluations"``
    (JSONL records with ``arch`` and ``top1``/``loss``), ``"json"``, ``"text"`` or ``"binary"``."""
    import json

    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return "binary"
    if not head:
        return "empty"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "broken-zip"
        if "schema.json" in names:
            return "predictor"
        if any(name.endswith("data.pkl") for name in names):
            return "checkpoint"
        return "zip"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        if len(head) == 4096:  # a multi-byte character cut at the end
            try:
                text = head[:-4].decode("utf-8")
            except UnicodeDecodeError:
                return "binary"
        else:
            return "binary"
    first = text.lstrip().split("\n", 1)[0]
    try:
        value = json.loads(first)
    except ValueError:
        return "json" if text.lstrip()[:1] in ("{", "[") else "text"
    if isinstance(value, dict):
        if value.get("kind") == "header" and "space_fingerprint" in value:
            return "profile"
        if "arch" in value and ("top1" in value or "loss" in value):
            return "evaluations"
    return "json"


_KIND_WORDS = {"checkpoint": "a torch checkpoint", "predictor": "a saved predictor (.skops)",
               "profile": "a latency profile", "evaluations": "evaluation records", "png": "a PNG image",
               "zip": "a zip archive", "broken-zip": "a truncated or corrupt zip archive", "json": "a JSON file", "text": "a text file", "binary": "a binary file",
               "directory": "a directory", "empty": "an empty file"}


# --- paths ------------------------------------------------------------------------------------------------
def check_input_file(path, name: str = "input", kinds: Iterable[str] | None = None) -> Path:
    """``path`` exists and is a file (of one of ``kinds`` when given, see :func:`sniff_kind`)."""
    if path is None or str(path) == "":
        raise PathError(f"{name}: a file path is required")
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{name} {str(path)!r} is a directory; a file is expected here")
    if not path.exists():
        raise PathError(f"{name} {str(path)!r} does not exist")
    if not os.access(path, os.R_OK):
        raise PathError(f"{name} {str(path)!r} is not readable")
    if kinds is not None:
        kinds = tuple(kinds)
        kind = sniff_kind(path)
        if kind == "broken-zip" and "checkpoint" in kinds:
            from .errors import CheckpointError

            raise CheckpointError(f"{name} {str(path)!r} is a truncated or corrupt checkpoint (its zip archive "
                                  f"cannot be read); if a run was killed while writing it, resume from the "
                                  f"previous checkpoint of that run")
        if kind not in kinds:
            raise PathError(f"{name} {str(path)!r} holds {_KIND_WORDS.get(kind, kind)}; expected "
                            + " or ".join(_KIND_WORDS.get(k, k) for k in kinds))
    return path


def check_input_dir(path, name: str = "input") -> Path:
    """``path`` exists and is a directory."""
    path = Path(path)
    if path.is_file():
        raise PathError(f"{name} {str(path)!r} is a file; a directory is expected here")
    if not path.is_dir():
        raise PathError(f"{name} {str(path)!r} does not exist")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_writable_location(path: Path, name: str) -> None:
    """The nearest existing ancestor of ``path`` is a directory we can create files in."""
    parent = path.parent if path.parent != Path("") else Path(".")
    ancestor = parent
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise PathError(f"{name} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a directory")
    try:  # os.access is not enough (root, read-only or virtual filesystems such as /proc)
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=".ofa-write-check-")
    except OSError as error:
        raise PathError(f"{name} {str(path)!r} is not writable ({error.strerror} in {str(ancestor)!r}); "
                        f"choose a location you can write to") from None
    os.close(fd)
    os.unlink(probe)


def check_output_path(path, inputs: Iterable = (), kind: str | Iterable[str] = "file", overwrite: bool = False,
                      name: str = "--out") -> Path:
    """Check an output path before any work.

    ``kind`` is ``"dir"`` for an output directory, else the file kind(s) the
    command writes (``"file"`` for any; or names of :func:`sniff_kind`, e.g.
    ``("png",)``): an existing file of another kind is refused unless
    ``overwrite``. ``inputs`` are the command's input paths: the output may be
    none of them (nor, for a directory, hold one as ``path`` itself)."""
    if path is None or str(path) == "":
        raise PathError(f"{name}: an output path is required")
    path = Path(path)
    for item in inputs:
        if item is None:
            continue
        label, value = item if isinstance(item, tuple) else ("an input", item)
        if value is None:  # an optional input that was not given
            continue
        if _same_file(path, Path(value)):
            raise PathError(f"{name} {str(path)!r} is also {label}; writing it would destroy that input: "
                            f"choose another output path")
    if kind == "dir":
        if path.exists() and not path.is_dir():
            raise PathError(f"{name} {str(path)!r} is an existing file; a directory is expected here")
        _check_writable_location(path / "x", name)
        return path
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if path.is_dir():
        raise PathError(f"{name} {str(path)!r} is a directory; a file path is expected here")
    if path.exists() and not overwrite and "file" not in kinds:
        existing = sniff_kind(path)
        if existing not in kinds + ("empty",):
            raise PathError(f"{name} {str(path)!r} already exists and holds {_KIND_WORDS.get(existing, existing)}; "
                            f"this command writes " + " or ".join(_KIND_WORDS.get(k, k) for k in kinds)
                            + ": choose another path (or pass --overwrite to replace it)")
    _check_writable_location(path, name)
    return path


__all__ = ["ArgumentParser", "ArgumentValueError", "PathError", "check_input_dir", "check_input_file",
           "check_output_path", "choice", "finite_float", "float_between", "fraction", "int_at_least",
           "holdout_fraction", "non_negative_float", "non_negative_int", "positive_float", "positive_int",
           "sniff_kind"]
