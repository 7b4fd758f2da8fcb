"""What Hydra's ConfigStore holds: every built-in schema under its name in its group, then the
schemas of the `quantbench.schemas` entry points beside the built-in ones they extend.

Each YAML option under `conf/<group>/` starts with `defaults: [base_<group>]` (or a more specific
schema such as `base_bnb_4bit`), so a misspelt key in a YAML file or on the command line is an
error instead of a silently ignored setting.
"""

from __future__ import annotations

import logging
from dataclasses import is_dataclass
from functools import cache

from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from omegaconf import DictConfig, OmegaConf

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
from quantbench.config.schema.hardware import HardwareConfig
from quantbench.config.schema.model import ModelConfig
from quantbench.config.schema.precision import (
    AutoRoundPrecisionConfig,
    AwqPrecisionConfig,
    BnbFourBitPrecisionConfig,
    BnbInt8PrecisionConfig,
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
from quantbench.config.schema.root import QuantbenchConfig
from quantbench.config.schema.scenario import ScenarioConfig


def register_configs() -> None:
    """Store every schema; idempotent, so tests and the app may both call it."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=QuantbenchConfig)
    store.store(group="model", name="base_model", node=ModelConfig)
    store.store(group="precision", name="base_precision", node=PrecisionConfig)
    store.store(group="precision", name="base_dense", node=DensePrecisionConfig)
    store.store(group="precision", name="base_bnb_int8", node=BnbInt8PrecisionConfig)
    store.store(group="precision", name="base_bnb_4bit", node=BnbFourBitPrecisionConfig)
    store.store(group="precision", name="base_torchao", node=TorchAoPrecisionConfig)
    store.store(group="precision", name="base_fp8", node=Fp8PrecisionConfig)
    store.store(group="precision", name="base_quanto", node=QuantoPrecisionConfig)
    store.store(group="precision", name="base_gptq", node=GptqPrecisionConfig)
    store.store(group="precision", name="base_awq", node=AwqPrecisionConfig)
    store.store(group="precision", name="base_gguf", node=GgufPrecisionConfig)
    store.store(group="precision", name="base_gguf_imatrix", node=GgufImatrixPrecisionConfig)
    store.store(group="precision", name="base_hqq", node=HqqPrecisionConfig)
    store.store(group="precision", name="base_autoround", node=AutoRoundPrecisionConfig)
    store.store(group="hardware", name="base_hardware", node=HardwareConfig)
    store.store(group="dataset", name="base_dataset", node=DatasetConfig)
    store.store(group="dataset", name="base_image_folder", node=ImageFolderDatasetConfig)
    store.store(group="dataset", name="base_synthetic_images", node=SyntheticImagesDatasetConfig)
    store.store(group="dataset", name="base_pubmedqa", node=PubMedQADatasetConfig)
    store.store(group="bench", name="base_bench", node=BenchConfig)
    store.store(group="dataset", name="base_wikitext", node=WikiTextDatasetConfig)
    store.store(group="dataset", name="base_synthetic_text", node=SyntheticTextDatasetConfig)
    store.store(group="scenario", name="base_scenario", node=ScenarioConfig)
    store.store(group="engine", name="base_engine", node=EngineConfig)
    store.store(group="engine", name="base_server_engine", node=ServerEngineConfig)
    store.store(group="engine", name="base_transformers_engine", node=TransformersEngineConfig)
    store.store(group="engine", name="base_llama_server_engine", node=LlamaServerEngineConfig)
    store.store(group="engine", name="base_vllm_engine", node=VllmEngineConfig)
    store.store(group="engine", name="base_endpoint_engine", node=_open_keys(EndpointEngineConfig, "extra_body"))
    register_plugin_schemas(store)


def _open_keys(schema: type, key: str) -> DictConfig:
    """The schema with `key` open to any keys: Hydra sets struct mode on the whole config, so
    `engine.extra_body={ignore_eos: true}` would be refused as a key not in the schema, although
    the dictionary is passed through to the server as it is."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node[key], False)
    return node


# The group a plugin's schema joins: the group of the built-in schema it extends.
PLUGIN_SCHEMA_GROUPS = {
    PrecisionConfig: "precision",
    ModelConfig: "model",
    DatasetConfig: "dataset",
    HardwareConfig: "hardware",
}
# Named after the package (quantbench.config.schema), as before the schemas were split into
# modules, so that a filter or log level set on that name still reaches these warnings.
log = logging.getLogger(__package__)


@cache
def _warn_once(message: str) -> None:
    log.warning("quantbench: %s", message)  # register_configs runs several times per process


def register_plugin_schemas(store: ConfigStore) -> None:
    """Store each schema of the `quantbench.schemas` entry points in the group of the schema it
    extends, after the built-ins; one that cannot be stored is logged and the others still are."""
    from quantbench.config.plugin_configs import plugin_schemas

    for schema in plugin_schemas():
        problem, group = schema.error, None
        if problem is None:
            extended = [
                name
                for base, name in PLUGIN_SCHEMA_GROUPS.items()
                if isinstance(schema.node, type) and is_dataclass(schema.node) and issubclass(schema.node, base)
            ]
            group = extended[0] if extended else None
            if group is None:
                choices = ", ".join(base.__name__ for base in PLUGIN_SCHEMA_GROUPS)
                problem = f"{schema.node!r} is not a dataclass extending one of {choices} (from quantbench.api)"
        if group is not None:
            path = f"{group}/{schema.name}.yaml"
            # provider: None for quantbench's own, the package for a plugin's (stored on an earlier call)
            if store.get_type(path) == ObjectType.CONFIG and store.load(path).provider != schema.distribution:
                problem = f"{path} is taken by {store.load(path).provider or 'quantbench'}; rename the entry point"
        if problem is not None:
            _warn_once(f"{schema.origin} not registered: {problem}")
            continue
        store.store(group=group, name=schema.name, node=schema.node, provider=schema.distribution)


def is_schema_option(name: str) -> bool:
    """Schemas live in the groups too; they are not options a user picks."""
    return name.startswith("base_")
