"""Crash-safe file writing: a kill at any moment leaves either the old file or
the new one, never a half-written file."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import DiskFullError

_FULL = (errno.ENOSPC, errno.EDQUOT)  # no room on the disk, or none left in the user's quota


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _free_bytes(path: Path) -> int | None:
    for folder in (path.parent, *path.parent.parents):  # the folder may not exist yet
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _size(count: int) -> str:
    return f"{count} bytes" + (f" ({count / 2**20:.1f} MiB)" if count >= 2**20 else "")


@contextmanager
def _full_disk_named(path: Path, needed: int) -> Iterator[None]:
    """A full disk inside the block becomes a :class:`DiskFullError` naming ``path``
    and the bytes it needed, not a bare ``OSError`` from deep inside a command."""
    try:
        yield
    except OSError as error:
        if error.errno not in _FULL:
            raise
        free = _free_bytes(path)
        raise DiskFullError(f"cannot write {path}: {os.strerror(error.errno).lower()}; it needs {_size(needed)}"
                            + (f", {_size(free)} are free there" if free is not None else "")
                            + "; no part of it was written: free some space or write to another disk") from None


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is down: a write may take only part, e.g. on a nearly full disk."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename; a full
    disk is a :class:`~ofa.errors.DiskFullError` and leaves ``path`` as it was."""
    path = Path(path)
    with _full_disk_named(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            try:
                os.fchmod(fd, _default_file_mode())  # mkstemp makes 0600 files; give the usual permissions
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp_name, path)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise
    _fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` made atomic. Keep ``obj`` to tensors and plain
    containers so that it loads with ``weights_only=True``."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def refusal_reason(error: BaseException) -> str:
    """A short reason why ``torch.load(weights_only=True)`` refused a file,
    never ending with torch's advice to pass ``weights_only=False`` without the
    warning that it runs code from the file."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text or "Unsupported global" in text:
        return ("the file holds Python objects other than tensors and plain data, which this package refuses "
                "to unpickle; loading it with weights_only=False would run arbitrary code from the file: do "
                "that only with a file from a source you trust")
    return text.splitlines()[0][:200] if text else type(error).__name__


def load_plain_torch_file(path: str | os.PathLike, error: type[Exception], what: str, hint: str = "",
                          map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never unpickled
    code. Any failure to read becomes ``error`` naming ``what``, the path, the reason and ``hint``."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as failure:  # truncated zips, refused pickles, foreign formats: the file's fault
        raise error(f"{what} {str(path)!r} cannot be read ({refusal_reason(failure)})"
                    + (f"; {hint}" if hint else "")) from None


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, in hex (read in 1 MiB pieces): what a result was made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as a single line and fsync it.

    The line is written on an ``O_APPEND`` descriptor, so a kill loses at most
    this record; readers treat a final line without a newline as an
    interrupted write. A full disk is a :class:`~ofa.errors.DiskFullError`
    and cuts the file back to what it held before.
    """
    path = Path(path)
    line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    with _full_disk_named(path, len(line)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # no partial record left behind (shrinking needs no space)
                raise
        finally:
            os.close(fd)
