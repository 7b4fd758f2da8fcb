"""The GGUF file types quantbench can ask llama.cpp's quantizer for, by their lower-case names.

Each type the binding's quantizer makes maps to its `LLAMA_FTYPE_*` constant (looked up at run
time, so a type a newer llama.cpp adds only needs a line here). The importance-matrix types (iq4_xs,
iq3_xxs, ...) are made by llama.cpp's own programs instead: llama-imatrix computes the matrix from
calibration text, `llama-quantize --imatrix` writes the file (quantbench/gguf/imatrix.py); each maps
to the name llama-quantize takes.
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
}
# name -> llama-quantize's name for it: always made with an importance matrix (the lowest-bit ones,
# iq2_* and iq1_*, llama.cpp refuses to make without one).
IMPORTANCE_MATRIX_TYPES: dict[str, str] = {
    "iq4_xs": "IQ4_XS",
    "iq4_nl": "IQ4_NL",
    "iq3_m": "IQ3_M",
    "iq3_s": "IQ3_S",
    "iq3_xs": "IQ3_XS",
    "iq3_xxs": "IQ3_XXS",
    "iq2_m": "IQ2_M",
    "iq2_s": "IQ2_S",
    "iq2_xs": "IQ2_XS",
    "iq2_xxs": "IQ2_XXS",
    "iq1_m": "IQ1_M",
    "iq1_s": "IQ1_S",
}
# The type the converter writes: every other type is quantized from it, so none is re-quantized twice.
CONVERTED_TYPE = "f32"


def check_file_type(name: str) -> str:
    """The type's canonical name; JobSkipped with the reason for one that cannot be made here."""
    canonical = name.lower()
    if canonical not in FILE_TYPES and canonical not in IMPORTANCE_MATRIX_TYPES:
        raise JobSkipped(
            f"unknown GGUF type '{name}'; choose one of: {', '.join([*FILE_TYPES, *IMPORTANCE_MATRIX_TYPES])}"
        )
    return canonical


def needs_importance_matrix(name: str) -> bool:
    return name in IMPORTANCE_MATRIX_TYPES


def file_type_constant(llama_cpp: Any, name: str) -> int:
    constant = getattr(llama_cpp, FILE_TYPES[name], None)
    if constant is None:
        raise JobSkipped(f"this llama.cpp build has no GGUF type {name} ({FILE_TYPES[name]}); update llama-cpp-python")
    return int(constant)
