"""A backend that is not a quantizer config: PyTorch's dynamic quantization, written on quantbench.api.

`torch.ao.quantization.quantize_dynamic` replaces each `nn.Linear` of a loaded float32 model with a
layer that keeps int8 weights (one scale per layer) and quantizes its activations per batch as it
runs; CPU only. transformers has no quantization config for it, so the class implements the
`Backend` protocol itself: load the float32 model, then quantize it. The tests register it
(tests/support/distributions.py), with tests/fixtures/plugin_conf/precision/torch-dynamic-int8.yaml,
through a test-made distribution's entry points, as an installed package would be.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantbench.api import (
    Device,
    LoadedModel,
    LoadRequest,
    ModelFamily,
    ModelSpec,
    PrecisionConfig,
    load_with_transformers,
    read_settings,
)

WEIGHTS = ("qint8", "float16")  # the weight dtypes quantize_dynamic offers


@dataclass
class TorchDynamicSettings(PrecisionConfig):
    """The keys of a torch-dynamic precision option: stored as the schema `base_torch_dynamic`."""

    weights: str = "qint8"  # qint8 | float16
    quantize_lm_head: bool = False  # the output head too (left in float32 by default, for quality)


class TorchDynamicBackend:
    name = "torch-dynamic"
    description = "PyTorch dynamic quantization (torch.ao quantize_dynamic), CPU only (plugin)"

    def unavailable_reason(self, device: Device) -> str | None:
        # Asked before every load, with the device the job loads onto: load() need not ask again.
        if device.type != "cpu":
            return f"torch dynamic quantization runs on CPU only; this device: {device.torch_device} ({device.name})"
        return None

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        # Asked with model=None before the model is resolved, then with it: every family here.
        return None

    def load(self, request: LoadRequest) -> LoadedModel:
        import torch  # inside: `quantbench list` imports every backend's module

        settings = read_settings(TorchDynamicSettings, request.precision)
        if settings.weights not in WEIGHTS:
            raise ValueError(f"unknown precision.weights '{settings.weights}'; choose one of: {', '.join(WEIGHTS)}")
        # The keywords go to the family's from_pretrained: quantize_dynamic takes float32 weights.
        loaded = load_with_transformers(request, dtype=torch.float32)
        head = loaded.model.get_output_embeddings()
        layers = {
            name
            for name, module in loaded.model.named_modules()
            if isinstance(module, torch.nn.Linear) and (settings.quantize_lm_head or module is not head)
        }
        dtype = getattr(torch, settings.weights)
        torch.ao.quantization.quantize_dynamic(loaded.model, layers, dtype=dtype, inplace=True)
        # Columns of its own in the summary. quantbench measures weight_memory_gb, bits_per_weight
        # and kernel from the model (the packed int8 weights included); a backend that knows
        # better reports them here, and its figures stand.
        loaded.metrics.update(compute_dtype="float32", torch_dynamic_weights=settings.weights)
        return loaded
