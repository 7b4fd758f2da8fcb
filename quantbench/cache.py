"""The on-disk cache: materialised models, quantized checkpoints, reference distributions.

Entries are directories written atomically: built in a temporary sibling, then renamed into
place, so an interrupted build never leaves a half entry that a later job would load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TEMPORARY_PREFIX = ".partial-"


def cache_root(configured: str | os.PathLike[str]) -> Path:
    root = Path(configured).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def stable_hash(payload: Any, length: int = 16) -> str:
    """A short hash of JSON-serialisable data, independent of dict order."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it becomes `final` in one rename.

    If another process finished the same entry first, ours is discarded and theirs kept: both were
    built from the same key. On any exception the temporary directory is removed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / f"{TEMPORARY_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:
        os.rename(temporary, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(temporary, ignore_errors=True)


def is_complete(entry: Path) -> bool:
    return entry.is_dir() and not entry.name.startswith(TEMPORARY_PREFIX)
