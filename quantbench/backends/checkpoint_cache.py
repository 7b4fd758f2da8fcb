"""Where quantized checkpoints live: `<cache_dir>/quantized/<model>-<method>-w<bits>g<group>-<key>/`.

The key hashes everything that changes the checkpoint (the model's weights and revision, the
method and its settings, the calibration text and how it is cut, the quantizing library's version:
gptqmodel for gptq/awq, auto-round for autoround), so every later job and sweep that asks for the
same checkpoint finds it. Each entry holds the checkpoint the library saved plus `quantbench.json`, the manifest: what it was built from, how long
it took, and the key's inputs (what `quantbench cache list` shows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.cache import TEMPORARY_PREFIX, is_complete, stable_hash

QUANTIZED_DIR = "quantized"
MANIFEST_FILE = "quantbench.json"
# Bump when the way a checkpoint is built changes, so old entries are not reused.
CHECKPOINT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointRecipe:
    """Everything a quantized checkpoint is a function of."""

    model_name: str
    model_fingerprint: str
    revision: str | None
    method: str  # gptq | awq | autoround
    bits: int
    group_size: int
    knobs: dict[str, Any]  # sym, desc_act, damp_percent, ...
    calibration: dict[str, Any]  # source (dataset option config or file), n_samples, seq_len, seed
    engine_version: str  # the quantizing library's version
    engine: str = "gptqmodel"  # the quantizing library (gptqmodel, auto-round): the version's key


    def key_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT_VERSION,
            "model": self.model_fingerprint,
            "revision": self.revision,
            "method": self.method,
            "bits": self.bits,
            "group_size": self.group_size,
            "knobs": self.knobs,
            "calibration": self.calibration,
            self.engine: self.engine_version,  # "gptqmodel": ... as before, so gptq/awq keys stay the same
        }

    @property
    def key(self) -> str:
        return stable_hash(self.key_payload())

    def entry_name(self) -> str:
        group = "all" if self.group_size == -1 else str(self.group_size)
        return f"{self.model_name}-{self.method}-w{self.bits}g{group}-{self.key}"


def quantized_root(cache_dir: Path) -> Path:
    return Path(cache_dir) / QUANTIZED_DIR


def entry_path(cache_dir: Path, recipe: CheckpointRecipe) -> Path:
    return quantized_root(cache_dir) / recipe.entry_name()


def is_usable(entry: Path) -> bool:
    """A complete entry (renamed into place) whose manifest was written last of all."""
    return is_complete(entry) and (entry / MANIFEST_FILE).is_file()


def write_manifest(directory: Path, recipe: CheckpointRecipe, built: dict[str, Any]) -> None:
    manifest = {"key": recipe.key, "model_name": recipe.model_name, "engine": recipe.engine, **recipe.key_payload(), "built": built}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(entry: Path) -> dict[str, Any]:
    try:
        return json.loads((entry / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def size_on_disk_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file() and not path.is_symlink())


def checkpoint_bytes(directory: Path) -> int:
    """The checkpoint itself: weights, configs and tokenizer, without quantbench's manifest and logs."""
    ignored = {MANIFEST_FILE, "quantize.log"}
    return sum(
        path.stat().st_size
        for path in Path(directory).rglob("*")
        if path.is_file() and not path.is_symlink() and path.name not in ignored
    )


def partial_directories(root: Path) -> list[Path]:
    """Temporary directories of builds that are running or were interrupted."""
    return sorted(path for path in Path(root).glob(f"{TEMPORARY_PREFIX}*") if path.is_dir())
