"""The on-disk cache: materialised models, quantized checkpoints, GGUF files, reference distributions.

Entries are directories written atomically: built in a temporary sibling, then renamed into
place, so an interrupted build never leaves a half entry that a later job would load.

Artefacts built from a recipe (quantized checkpoints, backends/checkpoint_cache.py; GGUF files,
gguf/store.py) share one entry mechanism: `<cache_dir>/<kind>/<label>-<key>/`, the key a hash of
everything the artefact is a function of, and a manifest, `quantbench.json`, written last of all:
an entry without one is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

from quantbench.atomic import write_json_atomic

TEMPORARY_PREFIX = ".partial-"
MANIFEST_FILE = "quantbench.json"  # in every recipe-built entry: what it was made from, written last


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


def partial_directories(root: Path) -> list[Path]:
    """Temporary directories of builds that are running or were interrupted."""
    return sorted(path for path in Path(root).glob(f"{TEMPORARY_PREFIX}*") if path.is_dir())


def size_on_disk_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file() and not path.is_symlink())


# ---- entries built from a recipe, with a manifest -------------------------------------------------


class CacheRecipe:
    """Everything a cached artefact is a function of. Each kind of artefact is a frozen dataclass
    with a `model_name` field that sets `kind` (its cache subdirectory) and says what its key hashes
    (`key_payload`) and how its entry reads to a person (`label`)."""

    kind: ClassVar[str]
    model_name: str

    def key_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def label(self) -> str:
        """The readable start of the entry's name: model, method or type, ..."""
        raise NotImplementedError

    def manifest_fields(self) -> dict[str, Any]:
        """What the manifest records beside the key's inputs and the build (`quantbench cache list` shows it)."""
        return {"model_name": self.model_name}

    @property
    def key(self) -> str:
        return stable_hash(self.key_payload())

    def entry_name(self) -> str:
        return f"{self.label()}-{self.key}"


@dataclass(frozen=True)
class ModelRecipe(CacheRecipe):
    """An artefact made from one model's weights (a quantized checkpoint, a GGUF file, an importance
    matrix): its key hashes them by fingerprint and revision, beside what the kind adds."""

    model_name: str
    model_fingerprint: str
    revision: str | None

    def model_payload(self) -> dict[str, Any]:
        return {"model": self.model_fingerprint, "revision": self.revision}


def entry_path(cache_dir: Path, recipe: CacheRecipe) -> Path:
    return Path(cache_dir) / recipe.kind / recipe.entry_name()


def is_usable(entry: Path) -> bool:
    """A complete entry (renamed into place) whose manifest was written last of all."""
    return is_complete(entry) and (entry / MANIFEST_FILE).is_file()


def write_manifest(directory: Path, recipe: CacheRecipe, built: dict[str, Any]) -> None:
    """The entry's manifest: its key, what it was made from and how (`built`). Write it last, inside
    `atomic_directory`: a manifest means a complete entry."""
    manifest = {"key": recipe.key, **recipe.manifest_fields(), **recipe.key_payload(), "built": built}
    write_json_atomic(directory / MANIFEST_FILE, manifest)


def read_manifest(entry: Path) -> dict[str, Any]:
    """The entry's manifest; empty when there is none or it cannot be read."""
    try:
        return json.loads((entry / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
