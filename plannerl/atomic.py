"""Atomic file writes: a reader (or an interrupted run) sees the old file or the new one, never half.

Every file plannerl writes goes through these helpers: the content is written to a hidden
temporary file in the same folder (`.NAME.XXXXXXXX.tmp`), flushed to disk, then renamed over
the target, and the folder is synced so the rename survives a crash.

Interrupts: a Ctrl-C (SIGINT) that arrives while a file is being written is held back until the
file is complete and renamed, or its temporary file removed, and then takes effect as usual
(KeyboardInterrupt, or whatever SIGINT handler the caller installed). So a SIGINT never leaves
a temporary file behind. A SIGKILL (or a power cut) can: the target is still the old or the new
file, and a stale `.NAME.*.tmp` beside it is safe to delete.

Folders: `replace_folder` swaps a complete folder (a saved model) into place in one step.

Failures (folder not writable, disk full, file-size limit) raise one `PlannerlError` line
naming the file; the temporary file is removed and the old file, if any, is left untouched.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from plannerl.errors import PlannerlError

TEMP_SUFFIX = ".tmp"


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically (creating its folder if needed)."""
    path = Path(path)
    with _sigint_deferred():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _create_temp(path)
        except (FileExistsError, NotADirectoryError):
            raise PlannerlError(f"cannot write {path}: part of {path.parent} is a file, not a folder") from None
        except OSError as exc:
            raise PlannerlError(f"cannot write {path}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _keep_mode(path, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PlannerlError(f"cannot write {path}: {exc.strerror or exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _sync_folder(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, *, indent: int | None = 2) -> Path:
    """JSON with sorted keys, so the same data always gives the same bytes."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable) -> Path:
    """One JSON object per line, keys sorted (same rows, same bytes)."""
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    return write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | Path) -> list:
    """The rows `write_jsonl` wrote (blank lines ignored)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def temp_files(folder: str | Path) -> list[Path]:
    """Temporary files these helpers left in `folder` (only a SIGKILL or a crash leaves any)."""
    return sorted(p for p in Path(folder).rglob(f".*{TEMP_SUFFIX}") if p.is_file())


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new hidden file beside `path`, created with the usual permissions (0666 minus the umask),
    not mkstemp's owner-only 0600: the files plannerl writes are meant to be shared."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _keep_mode(path: Path, tmp: Path) -> None:
    """A replaced file keeps the permissions its owner gave it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    os.chmod(tmp, mode)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; folders that cannot be opened for syncing are skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT for the duration of one write, then deliver it to the previous handler.

    Only the main thread can change signal handlers (and only it receives Python's SIGINT), so
    elsewhere this does nothing. A handler installed outside Python (None) is left alone.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    received: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[0])
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def check_writable(folder: str | Path) -> Path:
    """Fail now, not after an hour of planning, if `folder` cannot take new files."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PlannerlError(f"output folder {folder} is not writable: {exc.strerror}") from None
    return folder


def replace_folder(staging: Path, target: Path) -> None:
    """Put the complete folder `staging` at `target` in one step, then delete the old one.

    A folder cannot be renamed over a non-empty folder, and moving the old one aside first
    leaves a moment with no `target` at all (a SIGKILL there loses the model). On Linux the two
    are exchanged atomically (renameat2 RENAME_EXCHANGE); elsewhere, or on a filesystem
    without it, the old folder is moved aside first."""
    if not target.exists():
        os.replace(staging, target)
        return
    if not _exchange(staging, target):
        aside = target.with_name(f".{target.name}.old")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(staging, target)
        staging = aside
    shutil.rmtree(staging, ignore_errors=True)  # now the old folder


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc older than 2.28, or another libc
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
