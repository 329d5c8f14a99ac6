"""Writing files without ever losing one: output-folder safety, atomic writes, a run lock.

A command writes only into a folder that is absent, empty, or carries the marker file
that the same command left there (``--overwrite`` lifts the last condition, never the
others: the current folder, a folder above it, the home folder and any folder holding an
input are refused). Files and folders appear in one rename, so an interrupted run leaves
the previous output intact, and a temporary file never outlives a failed write.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

MARKER = ".bagoftricks"
LOCK = ".lock"


def _mark(folder: Path, command: str) -> None:
    (folder / MARKER).write_text(json.dumps({"command": command}) + "\n")


def written_by(folder: Path) -> str | None:
    """The command whose marker ``folder`` carries, or None."""
    try:
        return json.loads((Path(folder) / MARKER).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def check_output_folder(out: str | os.PathLike, *, command: str,
                        inputs: Sequence[str | os.PathLike] = (), overwrite: bool = False,
                        flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder whose replacement would lose user files.

    Raises
    ------
    ValueError
        ``out`` is the current folder, one above it, the home folder, an input file or
        a folder holding one, a file or a link, or a non-empty folder not written by
        ``bagoftricks COMMAND`` (the last one only without ``overwrite``).
    """
    out = Path(out)
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents or where == Path.home().resolve():
        raise ValueError(f"{flag}: {out} is the current folder, a folder above it or the home "
                         "folder; name a new folder for the output")
    for path in inputs:
        source = Path(path).resolve()
        if source == where or where in source.parents:
            raise ValueError(f"{flag}: {out} is the input {path} or holds it; "
                             "name a new folder for the output")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{flag}: {out} exists and is not a folder; name a new folder")
    if out.is_dir() and any(out.iterdir()) and written_by(out) != command and not overwrite:
        raise ValueError(f"{flag}: {out} holds files not written by 'bagoftricks {command}'; "
                         "name a new or empty folder, or pass --overwrite to replace it")
    return out


def check_output_file(out: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = (),
                      ours: Callable[[Path], bool] = lambda path: False,
                      overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse an output file that is an input, lies inside an input folder, or is a folder;
    an existing file is replaced only if ``ours(path)`` says this command wrote it, or
    with ``overwrite``."""
    out = Path(out)
    where = out.resolve()
    for path in inputs:
        source = Path(path).resolve()
        if source == where or source in where.parents:
            raise ValueError(f"{flag}: {out} is the input {path} or lies inside it; "
                             "name another file for the output")
    if out.is_dir():
        raise ValueError(f"{flag}: {out} is a folder; name a file for the output")
    if out.exists() and not overwrite and not ours(out):
        raise ValueError(f"{flag}: {out} exists and was not written by this command; name "
                         "a new file, or pass --overwrite to replace it")
    return out


def check_writable_folder(folder: str | os.PathLike, flag: str) -> Path:
    """``folder`` created if needed and proven writable (a temporary file is made and
    removed there); otherwise one ``ValueError`` naming ``flag`` and the reason."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{flag}: cannot write to {folder} ({err.strerror or err})") from None
    return folder


def _no_space(err: OSError, path: Path) -> OSError:
    if err.errno == errno.ENOSPC:
        return OSError(f"no space left on device while writing {path}")
    return err


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; once the block succeeds it is
    renamed to ``path``. The temporary file is removed on any failure, and a full disk is
    reported as such, with the path."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)  # a fresh name: nothing that already existed is touched
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise _no_space(err, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``atomic_file`` (flushed to disk first)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through ``atomic_write_bytes`` (serialized in memory first, so a
    full disk is a plain ``OSError`` rather than torch's ``inline_container`` failure)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_folder(out: str | os.PathLike, write: Callable[[Path], None], *,
                  command: str) -> Path:
    """Call ``write(tmp)`` on a fresh temporary folder, mark it as written by ``command``
    and put it at ``out`` in one rename: a failed run never leaves a half-written ``out``
    nor its temporary folder. Check ``out`` with ``check_output_folder`` first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # fresh, unique names beside out: nothing that already existed is touched
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    try:
        write(tmp)
        _mark(tmp, command)
        previous = out.exists()
        if previous:
            os.replace(out, old)  # (onto the empty folder made for it)
        try:
            os.replace(tmp, out)
        except BaseException:
            if previous:  # put the previous output back
                os.replace(old, out)
            raise
    except OSError as err:
        raise _no_space(err, out) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def mark_folder(folder: Path, command: str) -> None:
    """Create ``folder`` (if needed) and mark it as written by ``command``."""
    folder.mkdir(parents=True, exist_ok=True)
    if written_by(folder) != command:
        _mark(folder, command)


@contextmanager
def run_lock(folder: Path, flag: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a lock file with the PID, released by the
    kernel when the process dies), or refuse at once if another process holds it."""
    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise ValueError(f"{flag}: {folder} is in use by another run (PID {pid}); wait "
                             "for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def remove_if_unused(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but the marker and the lock file."""
    folder = Path(folder)
    if folder.is_dir() and written_by(folder) and {p.name for p in folder.iterdir()} <= {
            MARKER, LOCK}:
        shutil.rmtree(folder, ignore_errors=True)


def clear_folder(folder: Path, keep: Sequence[str] = (MARKER, LOCK)) -> None:
    """Remove what ``folder`` holds, except the names in ``keep``."""
    for entry in Path(folder).iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
