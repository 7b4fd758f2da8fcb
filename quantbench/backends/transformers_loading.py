"""Loading through transformers: the family's Auto class, and backends that are one quantizer config.

Most quantization libraries plug into transformers as a quantization config passed to
`from_pretrained` (BitsAndBytesConfig, TorchAoConfig, QuantoConfig, HqqConfig, ...), which
quantizes the weights while they load. A backend for one of them is a `QuantizerConfigBackend`
that names its settings dataclass (the schema of its precision options), the packages it needs,
and builds the config from the settings:

    class QuantoBackend(QuantizerConfigBackend):
        name, description = "quanto", "optimum-quanto weight-only quantization"
        settings = QuantoSettings
        requires = (Requirement("optimum-quanto", module="optimum.quanto"),)

        def quantizer_config(self, settings, request):
            from transformers import QuantoConfig  # inside: `quantbench list` imports every backend

            return QuantoConfig(weights=settings.weights)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from quantbench.backends.base import LoadedModel, LoadRequest, Requirement, missing_package_reason, read_settings
from quantbench.backends.capability import capability_reason
from quantbench.config.schema import PrecisionConfig
from quantbench.runtime.dtypes import torch_dtype

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device


def load_with_transformers(request: LoadRequest, **kwargs: Any) -> LoadedModel:
    """Load through the family's Auto class onto the request's device (shared by HF-native backends)."""
    spec = request.model
    common = {"revision": spec.revision, "trust_remote_code": spec.config.trust_remote_code}
    model = request.family.from_pretrained(spec.load_path, device_map=request.device.torch_device, **common, **kwargs)
    model.eval()
    processor = request.family.load_processor(spec.load_path, **common)
    return LoadedModel(model=model, processor=processor)


class QuantizerConfigBackend:
    """A backend whose whole method is a transformers quantization config built from its settings."""

    name: str = ""
    description: str = ""
    # The dataclass of this backend's precision options; the same class registered through the
    # `quantbench.schemas` entry point, so that a misspelt key fails when the config is composed.
    settings: type = PrecisionConfig
    requires: Sequence[Requirement | str] = ()  # packages that must be importable
    # The GPU generation the method's kernels need ((what, compute capability)); None: CPU too.
    needs: tuple[str, tuple[int, int]] | None = None

    def quantizer_config(self, settings: Any, request: LoadRequest) -> Any:
        """The transformers quantization config; import the library here, not at the top."""
        raise NotImplementedError(f"{type(self).__name__} must define quantizer_config(settings, request)")

    def compute_dtype(self, settings: Any, request: LoadRequest) -> str | None:
        """The dtype of activations and unquantized layers (recorded as `compute_dtype`); None:
        transformers' default. Raise JobSkipped where the method cannot run on request.device."""
        return None

    def metrics(self, settings: Any, request: LoadRequest) -> dict[str, Any]:
        """Extra result columns (which method, which library version): units in the names."""
        return {}

    def unavailable_reason(self, device: Device) -> str | None:
        missing = missing_package_reason(*self.requires)
        return missing or (capability_reason(self.needs[0], self.needs[1], device) if self.needs else None)

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        return None  # a quantization config applies to whatever from_pretrained loads: every family

    def load(self, request: LoadRequest) -> LoadedModel:
        settings = read_settings(self.settings, request.precision)
        dtype = self.compute_dtype(settings, request)
        dtype_kwargs = {} if dtype is None else {"dtype": torch_dtype(dtype)}
        loaded = load_with_transformers(
            request, quantization_config=self.quantizer_config(settings, request), **dtype_kwargs
        )
        if dtype is not None:
            loaded.metrics["compute_dtype"] = dtype
        loaded.metrics.update(self.metrics(settings, request))
        return loaded
