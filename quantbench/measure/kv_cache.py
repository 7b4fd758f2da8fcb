"""What one token of context costs in the KV cache: the one owner of these byte counts.

2 (K and V) x layers x KV heads x head size x the bytes of one cached value. The job records it in
result.json (`kv_cache_bytes_per_token`, with `activation_dtype` and `kv_cache_dtype`), so the
roofline needs neither the model's files nor its quantization method's dtype rules to count the KV
term. The bytes of one value:
- a torch dtype (the model's own cache, vLLM's fp8): its size (DTYPE_BYTES);
- a llama.cpp cache type (f16, q8_0, q4_0, ...): the block's bytes over its values, from gguf-py's
  GGML_QUANT_SIZES (q8_0: 34 bytes per 32 values, a f16 scale and 32 int8), exact;
- transformers' quantized cache (quanto, HQQ, fp8): measured on a probe the library quantizes
  (quantized_cache_bytes_per_value): its packed values and the scales and offsets of their groups,
  as the library keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1}
# Tokens of the probe the quantized cache's storage is measured on: a multiple of every group size.
PROBE_TOKENS = 1024


@dataclass(frozen=True)
class KvShape:
    layers: int
    kv_heads: int
    head_dim: int

    @property
    def values_per_token(self) -> int:
        """K and V values one token adds to the cache, over all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim

    def bytes_per_token(self, value_bytes: int | Fraction) -> int | float:
        """Bytes for one token at `value_bytes` per cached value (a Fraction for block formats):
        an int where exact (llama.cpp's block types divide the head size), else a float."""
        total = self.values_per_token * Fraction(value_bytes)
        return int(total) if total.denominator == 1 else float(total)


def ggml_bytes_per_value(type_name: str) -> Fraction:
    """Bytes per value of a ggml type by its llama.cpp name (f16, q8_0, iq4_nl, ...): block bytes over
    block size, from gguf-py. KeyError for a name ggml does not have."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    values, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    return Fraction(block_bytes, values)


def quantized_cache_bytes_per_value(layer: Any, shape: KvShape, dtype: Any) -> Fraction:
    """Bytes per cached value of one of transformers' quantized cache layers (QuantoQuantizedLayer,
    HQQQuantizedLayer, Fp8QuantizedLayer, made with the job's settings), measured: the layer
    quantizes a probe of PROBE_TOKENS tokens of one layer's keys and values in the model's dtype and
    the bytes of everything it keeps for them are counted. The residual tokens (the newest
    `residual_length`, kept unquantized) are not in this figure: it is the cost of every token
    beyond them."""
    import torch

    generator = torch.Generator().manual_seed(0)
    probe = (1, shape.kv_heads, PROBE_TOKENS, shape.head_dim)
    keys = torch.randn(probe, generator=generator).to(dtype)
    values = torch.randn(probe, generator=generator).to(dtype)
    layer.update(keys, values)
    stored = stored_bytes(layer._quantized_keys) + stored_bytes(layer._quantized_values)
    return Fraction(stored, 2 * keys.numel())


def stored_bytes(stored: Any) -> int:
    """Bytes of the tensors in a quantized state: a tensor subclass (quanto's) through its inner
    tensors, tuples and dicts (HQQ's data and meta, fp8's data and scale) through their items."""
    import torch

    if isinstance(stored, torch.Tensor):
        if type(stored) is not torch.Tensor and hasattr(stored, "__tensor_flatten__"):
            names, _ = stored.__tensor_flatten__()
            return sum(stored_bytes(getattr(stored, name)) for name in names)
        return stored.numel() * stored.element_size()
    if isinstance(stored, (tuple, list)):
        return sum(stored_bytes(item) for item in stored)
    if isinstance(stored, dict):
        return sum(stored_bytes(item) for item in stored.values())
    return 0


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
