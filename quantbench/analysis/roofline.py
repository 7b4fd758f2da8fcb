"""How close decoding gets to the memory-bandwidth limit.

Decoding one token for every sequence of a batch reads all the stored weights once (shared by the
batch) plus each sequence's KV cache. So one decode step reads

    weight bytes + batch x KV bytes per token x average context length

and the ceiling is batch x bandwidth / bytes-per-step tokens per second. The weight bytes are the
ones the model actually holds (`weight_memory_gb`, quantization state included); the KV bytes per
token (2 (K and V) x layers x KV heads x head dim x activation dtype size) are what the job read
from the loaded model (`kv_cache_bytes_per_token`, quantbench/measure/kv_cache.py); the average
context is the prompt length plus half the generated tokens. The measured side is the decode rate alone,
batch / TPOT, because prefill is compute-bound and has no place under this ceiling.
Compute, kernel launches and cache effects are ignored: the ceiling is an upper bound.
"""

from __future__ import annotations

from typing import Any

import polars as pl


def bytes_per_decode_step(weight_bytes: float, kv_bytes_per_token: float, batch: int, context_tokens: float) -> float:
    return weight_bytes + batch * kv_bytes_per_token * context_tokens


def ceiling_tokens_per_s(bandwidth_gb_s: float, bytes_per_step: float, batch: int) -> float:
    return batch * bandwidth_gb_s * 1e9 / bytes_per_step


def roofline_row(row: dict[str, Any]) -> dict[str, Any]:
    """Roofline columns for one summary row, from the facts its job recorded."""
    empty = {
        "bytes_per_decode_step_mb": None,
        "ceiling_tokens_per_s": None,
        "decode_tokens_per_s": None,
        "roofline_pct": None,
        "roofline_note": "",
    }
    bandwidth, weight_gb, batch = row.get("memory_bandwidth_gb_s"), row.get("weight_memory_gb"), row.get("batch")
    if not bandwidth or not weight_gb or not batch:
        missing = "memory bandwidth" if not bandwidth else "weight_memory_gb"
        return {**empty, "roofline_note": f"no {missing}"}
    kv_bytes = row.get("kv_cache_bytes_per_token")
    context = (row.get("input_tokens_per_iteration") or 0) / batch + (row.get("max_new_tokens") or 0) / 2
    step_bytes = bytes_per_decode_step(weight_gb * 1e9, kv_bytes or 0, batch, context)
    ceiling = ceiling_tokens_per_s(bandwidth, step_bytes, batch)
    tpot_ms = row.get("tpot_p50_ms")
    decode = batch * 1e3 / tpot_ms if tpot_ms else None
    note = "" if kv_bytes else "KV cache not counted: the job recorded no kv_cache_bytes_per_token"
    return {
        "bytes_per_decode_step_mb": step_bytes / 1e6,
        "ceiling_tokens_per_s": ceiling,
        "decode_tokens_per_s": decode,
        "roofline_pct": decode / ceiling * 100 if decode else None,
        "roofline_note": note if decode else (note + "; " if note else "") + "no TPOT measured",
    }


def with_roofline_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (one row per job) with the roofline columns added."""
    schema = {
        "bytes_per_decode_step_mb": pl.Float64,
        "ceiling_tokens_per_s": pl.Float64,
        "decode_tokens_per_s": pl.Float64,
        "roofline_pct": pl.Float64,
        "roofline_note": pl.Utf8,
    }
    added = pl.DataFrame([roofline_row(row) for row in frame.iter_rows(named=True)], schema=schema)
    return frame.drop([column for column in schema if column in frame.columns]).hstack(added)
