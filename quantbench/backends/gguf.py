"""GGUF types through llama.cpp: `precision=gguf-q4_k_m` and its siblings.

Loading a GGUF precision means: the model's checkpoint converted once to f32 by llama.cpp's
converter, quantized once to the type by llama.cpp's quantizer (both cached, quantbench/gguf/store.py),
and the file described (tensor types, bits per weight). The model itself is run by the llama.cpp
engine (quantbench/engines/llama_cpp.py), which opens the file with the job's threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quantbench.backends.base import LoadedModel, LoadRequest
from quantbench.gguf.binding import unavailable_reason
from quantbench.runtime.threads import job_threads

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

ENGINE = "llama.cpp"


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
        from quantbench.gguf.files import describe_file
        from quantbench.gguf.store import gguf_file
        from quantbench.gguf.types import check_file_type

        file_type = check_file_type(str(request.precision.type))
        spec = request.model
        threads = job_threads({})
        path, built = gguf_file(spec, file_type, request.cache_dir, threads)
        processor = request.family.load_processor(
            spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
        )
        metrics = {
            **built,
            **describe_file(path),
            "gguf_type": file_type,
            # What runs the linear layers: llama.cpp's ggml matmuls on the file's block types.
            "kernel": f"llama.cpp ggml {file_type}",
            "checkpoint_size_gb": path.stat().st_size / 1e9,
            "checkpoint": path.parent.name,
        }
        return LoadedModel(model=GgufModel(path, file_type), processor=processor, metrics=metrics)
