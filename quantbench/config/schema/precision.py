"""The `precision` group's schemas (conf/precision/): the base every precision extends, one schema
per quantization method's settings, and the calibration text of the calibrated methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING


@dataclass
class PrecisionConfig:
    name: str = MISSING
    backend: str = MISSING  # a name in the quantbench.backends entry-point group


@dataclass
class DensePrecisionConfig(PrecisionConfig):
    dtype: str = MISSING  # float32 | float16 | bfloat16


@dataclass
class BnbInt8PrecisionConfig(PrecisionConfig):
    threshold: float = 6.0  # LLM.int8() outlier threshold
    skip_modules: List[str] = field(default_factory=lambda: ["lm_head"])


@dataclass
class BnbFourBitPrecisionConfig(PrecisionConfig):
    quant_type: str = "nf4"  # nf4 | fp4
    double_quant: bool = True
    # auto: bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU.
    compute_dtype: str = "auto"
    skip_modules: List[str] = field(default_factory=lambda: ["lm_head"])


@dataclass
class TorchAoPrecisionConfig(PrecisionConfig):
    """torchao through transformers' TorchAoConfig: quantized while the weights load, no calibration."""

    # int8_weight_only | int8_dynamic (backend torchao), int4_weight_only (torchao-int4),
    # float8_dynamic (torchao-fp8)
    method: str = MISSING
    group_size: int = 128  # int4_weight_only: weights sharing one scale and zero point (32, 64, 128, 256)
    # Activations and unquantized layers: auto is bfloat16 on GPUs that have it, float16 on older
    # GPUs, float32 on CPU (int4 and float8 always run bfloat16).
    dtype: str = "auto"


@dataclass
class Fp8PrecisionConfig(PrecisionConfig):
    """transformers' fine-grained FP8 (FineGrainedFP8Config): e4m3 weights in blocks, dynamic activations."""

    weight_block_size: List[int] = field(default_factory=lambda: [128, 128])  # weights sharing one scale


@dataclass
class QuantoPrecisionConfig(PrecisionConfig):
    """optimum-quanto weights through transformers' QuantoConfig."""

    weights: str = MISSING  # int8 | int4 | int2 | float8
    dtype: str = "auto"  # as TorchAoPrecisionConfig.dtype


@dataclass
class CalibrationConfig:
    """The text a calibration-based method (gptq, awq) sees while it quantizes."""

    # A dataset option (builtin, pubmedqa, wikitext2, or a plugin's) or the path of a plain text file.
    dataset: str = "builtin"
    path: Optional[str] = None  # replaces the dataset option's `path` (e.g. a local ori_pqal.json)
    # replaces the dataset option's `split`: e.g. pubmedqa's train split, so that quality scores
    # on the test split are never computed on calibration text
    split: Optional[str] = None
    n_samples: int = 128  # token windows
    seq_len: int = 512  # tokens per window
    seed: int = 0  # which windows, in which order


@dataclass
class CalibratedPrecisionConfig(PrecisionConfig):
    """Quantized once from the full-precision model (gptqmodel: gptq, awq; auto-round: autoround), then
    cached on disk."""

    bits: int = 4
    # null: the model's quant_group_size, else 128; -1: one group per output row (no grouping).
    group_size: Optional[int] = None
    sym: bool = True  # symmetric quantization (no zero point)
    # Compute dtype of the loaded checkpoint: auto (gptqmodel's choice per device), float16, bfloat16, float32.
    dtype: str = "auto"
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


@dataclass
class GptqPrecisionConfig(CalibratedPrecisionConfig):
    desc_act: bool = False  # act-order: quantize columns by decreasing activation size
    damp_percent: Optional[float] = None  # Hessian dampening; null: gptqmodel's default


@dataclass
class AwqPrecisionConfig(CalibratedPrecisionConfig):
    pass


@dataclass
class HqqPrecisionConfig(PrecisionConfig):
    """Half-quadratic quantization (the hqq library): weights quantized while the model loads, no calibration."""

    bits: int = 4  # 8, 4, 3, 2 or 1
    # Weights sharing one scale and zero point; must divide every quantized layer's input width.
    # null: the model's quant_group_size, else 64.
    group_size: Optional[int] = None
    # Activations, scales, zero points and the layers left unquantized (lm_head): auto is bfloat16
    # on GPUs that have it, float16 on older GPUs, float32 on CPU.
    compute_dtype: str = "auto"


@dataclass
class AutoRoundPrecisionConfig(CalibratedPrecisionConfig):
    """Intel AutoRound (signed-gradient rounding), calibrated once on the gptq/awq calibration text, cached."""

    iters: int = 50  # tuning steps per decoder block; auto-round's own default is 200 (minutes on a CPU)
    batch_size: int = 4  # calibration windows per tuning step
    # Calibration text: smaller than gptq's defaults, so a CPU quantizes SmolLM2 in minutes.
    calibration: CalibrationConfig = field(default_factory=lambda: CalibrationConfig(n_samples=16, seq_len=256))


@dataclass
class GgufPrecisionConfig(PrecisionConfig):
    """A GGUF file type made by llama.cpp's converter and quantizer, run by the llama.cpp engine."""

    type: str = MISSING  # f32, f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, ... (quantbench/gguf/types.py)
    engine: str = "llama.cpp"  # who runs it


@dataclass
class GgufImatrixPrecisionConfig(GgufPrecisionConfig):
    """A GGUF type made with an importance matrix (iq4_xs, iq3_xxs, ...): llama-imatrix computes it once
    from the calibration text gptq and awq use (same windows), llama-quantize --imatrix makes the file."""

    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
