"""How close decoding gets to the memory-bandwidth limit.

Decoding one token for every sequence of a batch reads all the stored weights once (shared by the
batch) plus each sequence's KV cache. So one decode step reads

    weight bytes + batch x KV bytes per token x average context length

and the ceiling is batch x bandwidth / bytes-per-step tokens per second. The weight bytes are the
ones the model actually holds (`weight_memory_gb`, quantization state included); the KV bytes per
token are 2 (K and V) x layers x KV heads x head dim x activation dtype size; the average context is
the prompt length plus half the generated tokens. The measured side is the decode rate alone,
batch / TPOT, because prefill is compute-bound and has no place under this ceiling.
Compute, kernel launches and cache effects are ignored: the ceiling is an upper bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}


@dataclass(frozen=True)
class KvShape:
    layers: int
    kv_heads: int
    head_dim: int

    def bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def kv_shape_from_config(config: dict[str, Any]) -> KvShape | None:
    """Layers, KV heads and head size from a transformers config dict (text config if nested)."""
    config = config.get("text_config") or config
    layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
    heads = config.get("num_attention_heads") or config.get("n_head")
    if not layers or not heads:
        return None
    kv_heads = config.get("num_key_value_heads") or heads
    hidden = config.get("hidden_size") or config.get("n_embd")
    head_dim = config.get("head_dim") or (hidden // heads if hidden else None)
    if not head_dim:
        return None
    return KvShape(int(layers), int(kv_heads), int(head_dim))


def bytes_per_decode_step(weight_bytes: float, kv_bytes_per_token: float, batch: int, context_tokens: float) -> float:
    return weight_bytes + batch * kv_bytes_per_token * context_tokens


def ceiling_tokens_per_s(bandwidth_gb_s: float, bytes_per_step: float, batch: int) -> float:
    return batch * bandwidth_gb_s * 1e9 / bytes_per_step


def _model_config(result: dict[str, Any]) -> dict[str, Any] | None:
    """The transformers config of the job's model, found without loading any weights."""
    config = result.get("config") or {}
    model = config.get("model") or {}
    if model.get("architecture"):
        return dict(model["architecture"])
    directories: list[Path] = []
    if model.get("source") == "local" and model.get("path"):
        directories.append(Path(model["path"]).expanduser())
    if config.get("cache_dir") and model.get("name"):
        # Materialised models (GGUF, random-init) live in <cache_dir>/models/<name>-<fingerprint>/.
        models = Path(str(config["cache_dir"])).expanduser() / "models"
        directories += sorted(models.glob(f"{model['name']}-*"), key=lambda path: -path.stat().st_mtime)
    for directory in directories:
        file = directory / "config.json"
        if file.is_file():
            return json.loads(file.read_text())
    if model.get("source") == "hub" and model.get("id"):
        try:
            from transformers import AutoConfig

            hub_config = AutoConfig.from_pretrained(model["id"], revision=model.get("revision"), local_files_only=True)
            return hub_config.to_dict()
        except Exception:  # noqa: BLE001 - not in the local hub cache: the KV term is left out
            return None
    return None


def activation_dtype(result: dict[str, Any]) -> str:
    """The dtype the KV cache is kept in: what the job recorded, else what its precision implies."""
    metrics = result.get("metrics") or {}
    for key in ("activation_dtype", "model_dtype", "compute_dtype"):
        if isinstance(metrics.get(key), str):
            return metrics[key].replace("torch.", "")
    precision = (result.get("config") or {}).get("precision") or {}
    on_gpu = (result.get("environment") or {}).get("device_type") == "cuda"
    for key in ("dtype", "compute_dtype"):
        if precision.get(key) and precision[key] != "auto":
            return precision[key]
    if precision.get("compute_dtype") == "auto":  # bitsandbytes 4-bit, see backends/bitsandbytes.py
        capability = (result.get("environment") or {}).get("device_capability") or "0"
        return ("bfloat16" if float(capability) >= 8.0 else "float16") if on_gpu else "float32"
    return "float16" if on_gpu else "float32"


def roofline_row(row: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    """Roofline columns for one summary row (with memory_bandwidth_gb_s already filled in)."""
    empty = {
        "bytes_per_decode_step_mb": None,
        "kv_bytes_per_token": None,
        "ceiling_tokens_per_s": None,
        "decode_tokens_per_s": None,
        "roofline_pct": None,
        "roofline_note": "",
    }
    bandwidth, weight_gb, batch = row.get("memory_bandwidth_gb_s"), row.get("weight_memory_gb"), row.get("batch")
    if not bandwidth or not weight_gb or not batch:
        missing = "memory bandwidth" if not bandwidth else "weight_memory_gb"
        return {**empty, "roofline_note": f"no {missing}"}
    result = result or {}
    shape = kv_shape_from_config(_model_config(result) or {})
    dtype = activation_dtype(result)
    kv_bytes = shape.bytes_per_token(DTYPE_BYTES.get(dtype, 4)) if shape else 0
    context = (row.get("input_tokens_per_iteration") or 0) / batch + (row.get("max_new_tokens") or 0) / 2
    step_bytes = bytes_per_decode_step(weight_gb * 1e9, kv_bytes, batch, context)
    ceiling = ceiling_tokens_per_s(bandwidth, step_bytes, batch)
    tpot_ms = row.get("tpot_ms")
    decode = batch * 1e3 / tpot_ms if tpot_ms else None
    note = "" if shape else "KV cache not counted: model config not found"
    return {
        "bytes_per_decode_step_mb": step_bytes / 1e6,
        "kv_bytes_per_token": kv_bytes if shape else None,
        "ceiling_tokens_per_s": ceiling,
        "decode_tokens_per_s": decode,
        "roofline_pct": decode / ceiling * 100 if decode else None,
        "roofline_note": note if decode else (note + "; " if note else "") + "no TPOT measured",
    }


def with_roofline_columns(frame: pl.DataFrame, results: list[dict[str, Any] | None]) -> pl.DataFrame:
    """`frame` (one row per job, in the order of `results`) with the roofline columns added."""
    rows = [roofline_row(row, result) for row, result in zip(frame.iter_rows(named=True), results)]
    schema = {
        "bytes_per_decode_step_mb": pl.Float64,
        "kv_bytes_per_token": pl.Float64,
        "ceiling_tokens_per_s": pl.Float64,
        "decode_tokens_per_s": pl.Float64,
        "roofline_pct": pl.Float64,
        "roofline_note": pl.Utf8,
    }
    added = pl.DataFrame(rows, schema=schema)
    return frame.drop([column for column in schema if column in frame.columns]).hstack(added)
