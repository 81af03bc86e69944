"""Atomic file writes: a reader (or an interrupted run) sees the old file or the new one, never half.

Every file plannerl writes goes through these helpers: the content is written to a temporary
file in the same folder, flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from plannerl.errors import PlannerlError


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PlannerlError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PlannerlError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, *, indent: int | None = 2) -> Path:
    """JSON with sorted keys, so the same data always gives the same bytes."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows) -> Path:
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    return write_text(path, "".join(line + "\n" for line in lines))
