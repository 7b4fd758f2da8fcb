"""The weights a server loads for a precision: a directory on disk (a file for GGUF types).

Dense precisions and bitsandbytes (which quantizes while loading) serve the model's own directory
(materialised into the cache where it came from a GGUF file or a random-init architecture).
GPTQ and AWQ serve the quantized checkpoint that the offline jobs load: looked up in the cache by
the same recipe and quantized once on a miss, so a served and an offline job run the same weights.
GGUF types serve their cached file (a file, not a directory), made the same way as offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantbench.backends.base import LoadRequest


def served_weights(request: LoadRequest, backend: Any) -> tuple[Path, dict[str, Any]]:
    """(directory or GGUF file, facts for the result row) of what a server loads for this request."""
    from quantbench.backends.checkpoint_cache import checkpoint_bytes
    from quantbench.backends.gptq_awq import CalibratedBackend, prequantized_method
    from quantbench.cache import entry_path, is_usable

    spec = request.model
    if getattr(backend, "name", None) == "gguf":
        # The GGUF file of the type, converted and quantized once (quantbench/gguf/store.py), as offline.
        loaded = backend.load(request)
        return loaded.model.path, loaded.metrics
    if not isinstance(backend, CalibratedBackend):
        return Path(spec.load_path), {"checkpoint": spec.load_path}
    if prequantized_method(spec) is not None:
        return Path(spec.load_path), {"checkpoint": spec.load_path, "prequantized": True}
    recipe = backend.recipe(request)
    entry = entry_path(request.cache_dir, recipe)
    facts: dict[str, Any] = {"quantize_s": 0.0, "cache_hit": True}
    if not is_usable(entry):
        # The backend's own build (a gptqmodel child process), exactly as an offline job's load runs it.
        facts.update(backend._build(request, recipe, entry), cache_hit=False)
    facts.update(
        checkpoint=entry.name,
        checkpoint_size_gb=checkpoint_bytes(entry) / 1e9,
        bits=recipe.bits,
        group_size=recipe.group_size,
        prequantized=False,
    )
    return entry, facts
