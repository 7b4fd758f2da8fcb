"""The stable surface for plugins: everything a backend, model family or dataset plugin needs.

A plugin imports from `quantbench.api` and from nothing else in quantbench. The names below keep
their meaning across quantbench releases; the modules behind them may move (docs/plugins.md).
Importing this module imports neither torch nor transformers: `quantbench list` and the config
registration import plugin modules, and a job imports the heavy libraries only when it loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Backends: the protocol, what `load` receives and returns, reading the precision option.
from quantbench.backends.base import (
    Backend,
    LoadedModel,
    LoadRequest,
    Requirement,
    missing_package_reason,
    read_settings,
)

# Loading through transformers, and the base class of a backend that is one quantizer config.
from quantbench.backends.transformers_loading import QuantizerConfigBackend, load_with_transformers

# The schemas a plugin's settings dataclass extends (registered through `quantbench.schemas`).
from quantbench.config.schema import DatasetConfig, HardwareConfig, ModelConfig, PrecisionConfig

# Datasets: the protocol and what a dataset yields.
from quantbench.data.base import Dataset, Sample, expand_path

# What a job turns into a `skipped` row (JobSkipped) or a one-line error instead of a traceback.
from quantbench.errors import DatasetError, JobSkipped, ModelSourceError, QuantbenchError

# Model families: the protocol, the built-in decoder family to extend, random-init tokenizers.
from quantbench.families.base import GeneratedBatch, ModelFamily, PreparedBatch
from quantbench.families.decoder import DecoderFamily, greedy_generation_kwargs
from quantbench.models.source import ModelSpec
from quantbench.models.tokenizer import train_tokenizer
from quantbench.runtime.device import Device

# Dtypes by name, and what `auto` means on a device.
from quantbench.runtime.dtypes import DTYPE_NAMES, compute_dtype_name, torch_dtype

if TYPE_CHECKING:
    from quantbench.measure.timing import FirstTokenClock

__all__ = [
    "Backend",
    "DTYPE_NAMES",
    "DatasetConfig",
    "Dataset",
    "DatasetError",
    "DecoderFamily",
    "Device",
    "FirstTokenClock",
    "GeneratedBatch",
    "HardwareConfig",
    "JobSkipped",
    "LoadRequest",
    "LoadedModel",
    "ModelConfig",
    "ModelFamily",
    "ModelSourceError",
    "ModelSpec",
    "PrecisionConfig",
    "PreparedBatch",
    "QuantbenchError",
    "QuantizerConfigBackend",
    "Requirement",
    "Sample",
    "compute_dtype_name",
    "expand_path",
    "greedy_generation_kwargs",
    "load_with_transformers",
    "missing_package_reason",
    "read_settings",
    "torch_dtype",
    "train_tokenizer",
]


def __getattr__(name: str) -> Any:
    # FirstTokenClock subclasses a transformers class: imported on first use, not with this module.
    if name == "FirstTokenClock":
        from quantbench.measure.timing import FirstTokenClock

        return FirstTokenClock
    raise AttributeError(f"module 'quantbench.api' has no attribute '{name}'")
