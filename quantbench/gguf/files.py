"""What a GGUF file holds, read back from the file with the `gguf` reader.

bits_per_weight is the one definition in quantbench/measure/weight_bits.py, read here from the
file: the bytes the file stores for the blocks' linear-layer weights (block scales included) × 8 ÷
the number of those weights, with the same layer rule (`in_block`) as a loaded torch model's.
Token embeddings, the output layer and the norms (1-D) are left out.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from quantbench.measure.kv_cache import KvShape
from quantbench.measure.weight_bits import in_block

# The cache's directory of GGUF files and of the importance matrices they are made with
# (gguf/store.py, gguf/imatrix.py; `quantbench cache list` reads it by this name).
GGUF_DIR = "gguf"
# 2-D weights inside a block: attention projections and the MLP (blk.N.attn_q.weight, blk.N.ffn_down.weight, ...).
LINEAR_SUFFIX = ".weight"


def is_linear_weight(name: str, n_dims: int) -> bool:
    return in_block(name) and name.endswith(LINEAR_SUFFIX) and n_dims == 2


def describe_file(path: Path) -> dict[str, Any]:
    """bits_per_weight, the tensor-type mix of the linear layers (type -> tensor count) and of the file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    linear_bytes = linear_weights = 0
    linear_mix: Counter[str] = Counter()
    file_mix: Counter[str] = Counter()
    for tensor in reader.tensors:
        type_name = tensor.tensor_type.name
        file_mix[type_name] += 1
        if is_linear_weight(tensor.name, len(tensor.shape)):
            linear_mix[type_name] += 1
            linear_bytes += int(tensor.n_bytes)
            linear_weights += int(tensor.n_elements)
    return {
        "bits_per_weight": linear_bytes * 8 / linear_weights if linear_weights else None,
        "linear_weights": linear_weights,
        "tensor_types": format_mix(linear_mix),
        "file_tensor_types": format_mix(file_mix),
    }


def format_mix(mix: Counter[str]) -> str:
    """'Q5_0:10 Q8_0:4', most frequent first: one string, so it is one column of the summary."""
    return " ".join(f"{name}:{count}" for name, count in sorted(mix.items(), key=lambda item: (-item[1], item[0])))


def context_length(path: Path) -> int:
    """The context the model was trained for, as the file records it (`<architecture>.context_length`)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    architecture = fields["general.architecture"].contents()
    return int(fields[f"{architecture}.context_length"].contents())


def kv_shape(path: Path) -> KvShape | None:
    """Layers, KV heads and head size as llama.cpp reads them from the file (`<architecture>.block_count`,
    `.attention.head_count_kv`, `.attention.key_length`, else embedding_length / head_count); None
    where the file does not say (an architecture without attention heads)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    architecture = fields["general.architecture"].contents()

    def value(key: str) -> int | None:
        field = fields.get(f"{architecture}.{key}")
        return None if field is None else int(field.contents())

    layers, heads = value("block_count"), value("attention.head_count")
    if not layers or not heads:
        return None
    kv_heads = value("attention.head_count_kv") or heads
    embedding = value("embedding_length")
    head_dim = value("attention.key_length") or (embedding // heads if embedding else None)
    return KvShape(layers, kv_heads, head_dim) if head_dim else None
