"""The structured-config schemas: one dataclass per config node, stored in Hydra's ConfigStore so
that a misspelt key or a value of the wrong type in a YAML option or on the command line is an
error instead of a silently ignored setting.

One module per config group, as `quantbench/conf/<group>/`: model, precision, hardware, dataset,
quality, bench, scenario, engine; one per node that is not a group: analysis, serve. `root` is the
composed config's top level, `renamed` the table of renamed keys, `store` what the ConfigStore
holds (the built-in schemas and the plugins' `quantbench.schemas`).
"""

from quantbench.config.schema.analysis import AnalysisConfig
from quantbench.config.schema.bench import BenchConfig
from quantbench.config.schema.dataset import (
    DatasetConfig,
    ImageFolderDatasetConfig,
    PubMedQADatasetConfig,
    SyntheticImagesDatasetConfig,
    SyntheticTextDatasetConfig,
    WikiTextDatasetConfig,
)
from quantbench.config.schema.engine import (
    EndpointEngineConfig,
    EngineConfig,
    LlamaServerEngineConfig,
    ServerEngineConfig,
    TransformersEngineConfig,
    VllmEngineConfig,
)
from quantbench.config.schema.hardware import HardwareConfig, SlurmPlacementConfig
from quantbench.config.schema.model import ModelConfig
from quantbench.config.schema.precision import (
    AutoRoundPrecisionConfig,
    AwqPrecisionConfig,
    BnbFourBitPrecisionConfig,
    BnbInt8PrecisionConfig,
    CalibratedPrecisionConfig,
    CalibrationConfig,
    DensePrecisionConfig,
    Fp8PrecisionConfig,
    GgufImatrixPrecisionConfig,
    GgufPrecisionConfig,
    GptqPrecisionConfig,
    HqqPrecisionConfig,
    PrecisionConfig,
    QuantoPrecisionConfig,
    TorchAoPrecisionConfig,
)
from quantbench.config.schema.quality import (
    FidelityQualityConfig,
    PerplexityQualityConfig,
    PubMedQAQualityConfig,
    QualityConfig,
)
from quantbench.config.schema.renamed import RENAMED_KEYS
from quantbench.config.schema.root import QuantbenchConfig
from quantbench.config.schema.scenario import ScenarioConfig
from quantbench.config.schema.serve import OversaturationConfig, SearchConfig, ServeConfig, SloConfig
from quantbench.config.schema.store import (
    PLUGIN_SCHEMA_GROUPS,
    is_schema_option,
    register_configs,
    register_plugin_schemas,
)

__all__ = [
    "AnalysisConfig",
    "AutoRoundPrecisionConfig",
    "AwqPrecisionConfig",
    "BenchConfig",
    "BnbFourBitPrecisionConfig",
    "BnbInt8PrecisionConfig",
    "CalibratedPrecisionConfig",
    "CalibrationConfig",
    "DatasetConfig",
    "DensePrecisionConfig",
    "EndpointEngineConfig",
    "EngineConfig",
    "FidelityQualityConfig",
    "Fp8PrecisionConfig",
    "GgufImatrixPrecisionConfig",
    "GgufPrecisionConfig",
    "GptqPrecisionConfig",
    "HardwareConfig",
    "HqqPrecisionConfig",
    "ImageFolderDatasetConfig",
    "LlamaServerEngineConfig",
    "ModelConfig",
    "OversaturationConfig",
    "PLUGIN_SCHEMA_GROUPS",
    "PerplexityQualityConfig",
    "PrecisionConfig",
    "PubMedQADatasetConfig",
    "PubMedQAQualityConfig",
    "QualityConfig",
    "QuantbenchConfig",
    "QuantoPrecisionConfig",
    "RENAMED_KEYS",
    "ScenarioConfig",
    "SearchConfig",
    "ServeConfig",
    "ServerEngineConfig",
    "SloConfig",
    "SlurmPlacementConfig",
    "SyntheticImagesDatasetConfig",
    "SyntheticTextDatasetConfig",
    "TorchAoPrecisionConfig",
    "TransformersEngineConfig",
    "VllmEngineConfig",
    "WikiTextDatasetConfig",
    "is_schema_option",
    "register_configs",
    "register_plugin_schemas",
]
