"""What one token of context costs in the KV cache, read from the loaded model at job time.

2 (K and V) x layers x KV heads x head size x the activation dtype's size. The job records it in
result.json (`kv_cache_bytes_per_token`, with `activation_dtype`), so the roofline needs neither
the model's files nor its quantization method's dtype rules to count the KV term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1}


@dataclass(frozen=True)
class KvShape:
    layers: int
    kv_heads: int
    head_dim: int

    def bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def _first(config: Any, *names: str) -> Any:
    """The first of `names` that a config (a dict, or a transformers config object) sets."""
    for name in names:
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if value:
            return value
    return None


def kv_shape_from_config(config: Any) -> KvShape | None:
    """Layers, KV heads and head size from a transformers config (its text config where nested)."""
    if not isinstance(config, dict) and hasattr(config, "get_text_config"):
        config = config.get_text_config()  # multimodal: the language model's; encoder-decoder: itself
    nested = _first(config, "text_config")
    config = nested or config
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head", "num_heads")
    if not layers or not heads:
        return None
    kv_heads = _first(config, "num_key_value_heads") or heads
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    head_dim = _first(config, "head_dim", "d_kv") or (hidden // heads if hidden else None)
    if not head_dim:
        return None
    return KvShape(int(layers), int(kv_heads), int(head_dim))


def activation_dtype(model: Any) -> str | None:
    """The dtype hidden states and the KV cache are kept in: the model's floating-point dtype.

    Quantized weights keep their own storage types; bitsandbytes' layers compute in their compute
    dtype but hand their output back in the input's dtype, so the cache is in this one.
    """
    dtype = getattr(model, "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else None


def kv_cache_bytes_per_token(model: Any) -> int | None:
    """Bytes one token of context occupies in the KV cache of a loaded transformers model."""
    shape = kv_shape_from_config(getattr(model, "config", None) or {})
    dtype_bytes = DTYPE_BYTES.get(activation_dtype(model) or "")
    if shape is None or dtype_bytes is None:
        return None
    return shape.bytes_per_token(dtype_bytes)
