"""The backend protocol. A backend turns a model source plus a precision config into a loaded
model on a device; it also says, before anything heavy happens, whether it can run here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.device import Device
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec


@dataclass
class LoadRequest:
    model: "ModelSpec"
    family: "ModelFamily"
    precision: "DictConfig"
    device: "Device"
    cache_dir: Path


@dataclass
class LoadedModel:
    model: Any
    processor: Any  # a tokenizer, or a multimodal processor
    # Backend-specific facts that go into the result row as they are (quantize_s, cache_hit,
    # kernel, checkpoint_bytes, ...). Keys are column names: give units in the name.
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str
    description: str

    def unavailable_reason(self, device: "Device") -> str | None:
        """Why this backend cannot run on `device` (missing package, too old a GPU), or None."""

    def unsupported_reason(self, family: "ModelFamily", model: "ModelSpec | None") -> str | None:
        """Why this backend cannot handle this family (or this model), or None."""

    def load(self, request: LoadRequest) -> LoadedModel:
        """Load (and quantize, where needed) the model on the request's device."""


def missing_package_reason(*modules: str) -> str | None:
    """'requires X (pip install X)' for the first module that cannot be found, without importing it."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"requires the '{module}' package, which is not installed (pip install {module})"
    return None
