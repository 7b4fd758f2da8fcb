"""Where quantized checkpoints live: `<cache_dir>/quantized/<model>-<method>-w<bits>g<group>-<key>/`.

The key hashes everything that changes the checkpoint (the model's weights and revision, the
method and its settings, the calibration text and how it is cut, the quantizing library's version:
gptqmodel for gptq/awq, auto-round for autoround), so every later job and sweep that asks for the
same checkpoint finds it. Each entry holds the checkpoint the library saved plus `quantbench.json`,
the manifest: what it was built from, how long it took, and the key's inputs (what
`quantbench cache list` shows). The entry mechanism (key, manifest, atomic build) is the cache's
own, quantbench/cache.py, shared with the GGUF files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from quantbench.cache import MANIFEST_FILE, ModelRecipe, read_manifest

QUANTIZED_DIR = "quantized"
# Bump when the way a checkpoint is built changes, so old entries are not reused.
CHECKPOINT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointRecipe(ModelRecipe):
    """Everything a quantized checkpoint is a function of."""

    kind: ClassVar[str] = QUANTIZED_DIR

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
            **self.model_payload(),
            "method": self.method,
            "bits": self.bits,
            "group_size": self.group_size,
            "knobs": self.knobs,
            "calibration": self.calibration,
            self.engine: self.engine_version,  # "gptqmodel": ... as before, so gptq/awq keys stay the same
        }

    def label(self) -> str:
        group = "all" if self.group_size == -1 else str(self.group_size)
        return f"{self.model_name}-{self.method}-w{self.bits}g{group}"

    def manifest_fields(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "engine": self.engine}


def quantized_root(cache_dir: Path) -> Path:
    return Path(cache_dir) / QUANTIZED_DIR


def checkpoint_bytes(directory: Path) -> int:
    """The checkpoint itself: weights, configs and tokenizer, without quantbench's manifest and logs."""
    ignored = {MANIFEST_FILE, "quantize.log"}
    return sum(
        path.stat().st_size
        for path in Path(directory).rglob("*")
        if path.is_file() and not path.is_symlink() and path.name not in ignored
    )


def checkpoint_details(entry: Path) -> str:
    """One line for `quantbench cache list`: method, calibration, and what quantized it."""
    manifest = read_manifest(entry)
    if not manifest:
        return "no manifest"
    calibration = manifest.get("calibration", {})
    source = calibration.get("source", {})
    dataset = source.get("option") or Path(str(source.get("file", "?"))).name
    built = manifest.get("built", {})
    group = manifest.get("group_size")
    windows = built.get("calibration_windows", calibration.get("n_samples"))  # fewer when the text is short
    engine = manifest.get("engine", "gptqmodel")  # manifests before autoround name no engine
    return (
        f"{manifest.get('method')} {manifest.get('bits')}-bit g{group}, calibration {dataset} "
        f"{windows}x{calibration.get('seq_len')} tokens seed {calibration.get('seed')}, "
        f"quantized in {float(built.get('quantize_s') or 'nan'):.0f} s, {engine} {manifest.get(engine)}"
    )
