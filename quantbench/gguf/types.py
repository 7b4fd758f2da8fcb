"""The GGUF file types quantbench can ask llama.cpp's quantizer for, by their lower-case names.

Each maps to the binding's `LLAMA_FTYPE_*` constant (looked up at run time, so a type a newer
llama.cpp adds only needs a line here). Types marked as needing an importance matrix cannot be made
through the binding, which has no way to pass one from Python.
"""

from __future__ import annotations

from typing import Any

from quantbench.errors import JobSkipped

# name -> the binding's constant
FILE_TYPES: dict[str, str] = {
    "f32": "LLAMA_FTYPE_ALL_F32",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "iq4_xs": "LLAMA_FTYPE_MOSTLY_IQ4_XS",
    "iq2_xxs": "LLAMA_FTYPE_MOSTLY_IQ2_XXS",
    "iq2_xs": "LLAMA_FTYPE_MOSTLY_IQ2_XS",
    "iq1_s": "LLAMA_FTYPE_MOSTLY_IQ1_S",
    "iq1_m": "LLAMA_FTYPE_MOSTLY_IQ1_M",
}
# llama.cpp refuses these without an importance matrix (llama-imatrix's output).
NEEDS_IMPORTANCE_MATRIX = frozenset({"iq2_xxs", "iq2_xs", "iq1_s", "iq1_m"})
# The type the converter writes: every other type is quantized from it, so none is re-quantized twice.
CONVERTED_TYPE = "f32"


def check_file_type(name: str) -> str:
    """The type's canonical name; JobSkipped with the reason for one that cannot be made here."""
    canonical = name.lower()
    if canonical not in FILE_TYPES:
        raise JobSkipped(f"unknown GGUF type '{name}'; choose one of: {', '.join(FILE_TYPES)}")
    if canonical in NEEDS_IMPORTANCE_MATRIX:
        raise JobSkipped(
            f"llama.cpp makes GGUF type {canonical} only with an importance matrix (llama-imatrix), which "
            "llama-cpp-python's llama_model_quantize cannot be given; choose a type without one (e.g. q4_k_m)"
        )
    return canonical


def file_type_constant(llama_cpp: Any, name: str) -> int:
    constant = getattr(llama_cpp, FILE_TYPES[name], None)
    if constant is None:
        raise JobSkipped(f"this llama.cpp build has no GGUF type {name} ({FILE_TYPES[name]}); update llama-cpp-python")
    return int(constant)
