"""GGUF types through llama.cpp: `precision=gguf-q4_k_m` and its siblings.

Loading a GGUF precision means: the model's checkpoint converted once to f32 by llama.cpp's
converter, quantized once to the type by llama.cpp's quantizer (both cached, quantbench/gguf/store.py),
and the file described (tensor types, bits per weight). The model itself is run by the llama.cpp
engine (quantbench/engines/llama_cpp.py), which opens the file with the job's threads.

An importance-matrix type (`precision=gguf-iq4_xs`, ...) also needs llama.cpp's built tools
(llama-imatrix, llama-quantize; `quantbench engines install llama.cpp`) and calibration text: the
token windows gptq and awq calibrate on (quantbench/backends/calibration.py, the same settings and
defaults), from which the importance matrix is computed once (quantbench/gguf/imatrix.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from quantbench.backends.base import LoadedModel, LoadRequest
from quantbench.errors import JobSkipped
from quantbench.gguf.binding import unavailable_reason
from quantbench.runtime.threads import job_threads

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily
    from quantbench.gguf.imatrix import CalibrationText
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

ENGINE = "llama.cpp"
IMATRIX_TOOLS = ("llama-imatrix", "llama-quantize")


@dataclass(frozen=True)
class GgufModel:
    """What the llama.cpp engine opens: the file and its type."""

    path: Path
    file_type: str


class GgufBackend:
    name = "gguf"
    description = "GGUF types made with llama.cpp's converter and quantizer, run by llama.cpp"
    engine = ENGINE

    def unavailable_reason(self, device: Device) -> str | None:
        reason = unavailable_reason()
        if reason is None and device.is_cuda:
            from quantbench.gguf.binding import import_binding

            if not import_binding().llama_supports_gpu_offload():
                return (
                    "this llama-cpp-python build has no GPU offload; run GGUF types with hardware.device=cpu, or "
                    "reinstall it with CMAKE_ARGS=-DGGML_CUDA=on"
                )
        return reason

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        if family.name != "decoder":
            return f"GGUF types run decoder-only language models through llama.cpp; family '{family.name}' is not one"
        return None

    def load(self, request: LoadRequest) -> LoadedModel:
        from quantbench.gguf.store import gguf_file
        from quantbench.gguf.tools import ToolsUnavailable, tool_path
        from quantbench.gguf.types import check_file_type, needs_importance_matrix

        file_type = check_file_type(str(request.precision.type))
        spec = request.model
        threads = job_threads({})
        processor = request.family.load_processor(
            spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
        )
        calibration = None
        if needs_importance_matrix(file_type):
            calibration = calibration_text(request.precision, processor)
            try:
                for tool in IMATRIX_TOOLS:  # both, before anything is computed
                    tool_path(request.cache_dir, tool)
            except ToolsUnavailable as error:
                raise JobSkipped(
                    f"GGUF type {file_type} is made by llama.cpp's llama-imatrix and llama-quantize: {error}"
                ) from None
        path, built = gguf_file(spec, file_type, request.cache_dir, threads, calibration)
        metrics = {
            **built,  # with what the file holds: bits_per_weight, tensor_types (quantbench/gguf/files.py)
            "gguf_type": file_type,
            # What runs the linear layers: llama.cpp's ggml matmuls on the file's block types.
            "kernel": f"llama.cpp ggml {file_type}",
            "checkpoint_size_gb": path.stat().st_size / 1e9,
            "checkpoint": path.parent.name,
        }
        return LoadedModel(model=GgufModel(path, file_type), processor=processor, metrics=metrics)


def calibration_text(precision: DictConfig, tokenizer: Any) -> CalibrationText:
    """The importance matrix's text: gptq's and awq's calibration windows for these settings, computed
    only when the matrix is not cached, and the tokenizer's decoding of a window."""
    from quantbench.backends.calibration import calibration_source, calibration_texts, calibration_windows
    from quantbench.gguf.imatrix import CalibrationText

    calibration = precision.get("calibration")
    if calibration is None:
        raise JobSkipped(
            f"precision '{precision.name}' is an importance-matrix GGUF type but has no `calibration` settings; "
            "base it on base_gguf_imatrix (as conf/precision/gguf-iq4_xs.yaml does)"
        )
    settings = {
        "source": calibration_source(calibration),
        "n_samples": int(calibration.n_samples),
        "seq_len": int(calibration.seq_len),
        "seed": int(calibration.seed),
    }

    def windows() -> list[list[int]]:
        return calibration_windows(
            calibration_texts(settings["source"]),
            tokenizer,
            settings["n_samples"],
            settings["seq_len"],
            settings["seed"],
        )

    def decode(window: list[int]) -> str:
        return tokenizer.decode(window, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    return CalibrationText(settings, windows, decode)
