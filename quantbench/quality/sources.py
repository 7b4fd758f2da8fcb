"""Reading the quality data through the dataset plugins: a local file where there is one, else the hub."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantbench import registry
from quantbench.data.base import Sample, expand_path

log = logging.getLogger("quantbench")


def dataset_config(node: DictConfig, **overrides: Any) -> DictConfig:
    """A plain copy of a dataset node (interpolations resolved), where a configured local file that
    does not exist gives way to the hub: the default paths point at the project's data directory,
    which an installed quantbench elsewhere does not have."""
    config = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    for key, value in overrides.items():
        config[key] = value
    if config.get("path") and not expand_path(config.path).is_file() and config.get("hub_id"):
        log.info("no file at %s; reading %s from the hub instead", config.path, config.hub_id)
        config.path = None
    return config


def read_samples(node: DictConfig, **overrides: Any) -> list[Sample]:
    config = dataset_config(node, **overrides)
    return registry.datasets().get(config.loader).load(config)
