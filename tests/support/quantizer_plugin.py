"""Backends written as a third party writes them: on quantbench.api's QuantizerConfigBackend.

A method that transformers runs through a quantizer config is a settings dataclass and one class
(and a YAML file per option). The tests register these (tests/support/distributions.py) through
a real, test-made distribution's entry points (`quantbench.backends`, `quantbench.schemas`, `quantbench.configs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantbench.api import PrecisionConfig, QuantizerConfigBackend, Requirement


@dataclass
class TorchAoInt8Settings(PrecisionConfig):
    dynamic_activations: bool = False  # also int8 activations, quantized per token at run time (W8A8)


class TorchAoInt8Backend(QuantizerConfigBackend):
    name = "test-torchao-int8"
    description = "torchao int8 weights through TorchAoConfig"
    settings = TorchAoInt8Settings
    requires = ("torchao",)

    def quantizer_config(self, settings: TorchAoInt8Settings, request):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(
            Int8DynamicActivationInt8WeightConfig() if settings.dynamic_activations else Int8WeightOnlyConfig()
        )


@dataclass
class QuantoSettings(PrecisionConfig):
    weights: str = "int8"  # int8 | int4 | int2 | float8 (weights only: transformers refuses quanto's activations)


class QuantoBackend(QuantizerConfigBackend):
    name = "test-quanto"
    description = "optimum-quanto through QuantoConfig"
    settings = QuantoSettings
    # Installed as optimum-quanto, imported as optimum.quanto (optimum itself may be absent).
    requires = (Requirement("optimum-quanto", module="optimum.quanto"),)

    def quantizer_config(self, settings: QuantoSettings, request):
        from transformers import QuantoConfig

        return QuantoConfig(weights=settings.weights)
