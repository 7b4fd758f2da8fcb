"""Reading the quality data through the dataset plugins: a local file where there is one, else the hub.

The local files live under `quality.data_dir`: `$QUANTBENCH_DATA`, else `~/.cache/quantbench/data`
(pubmedqa/ori_pqal.json, wikitext-2/test.txt). A file missing there is read from the hub, with a
line saying so; offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or where the hub cannot be reached,
the error is one line naming the path looked at and the variable that moves it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantbench.config import registry
from quantbench.data.base import Sample, expand_path
from quantbench.errors import DatasetError

log = logging.getLogger("quantbench")
DATA_VARIABLE = "QUANTBENCH_DATA"  # moves quality.data_dir (quantbench/config/schema/quality.py)
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_PROBE_TIMEOUT_S = 5.0


def _hub_unusable() -> str | None:
    """Why the hub cannot stand in for a missing file, or None.

    The offline variables are read now, not at import as huggingface_hub does (a job's environment
    is set after the warm worker imported it). Then one quick request through huggingface_hub's own
    session (its endpoint, its proxies): an unreachable hub is one line here instead of half a
    minute of the loader's retry warnings.
    """
    offline = next(
        (name for name in OFFLINE_VARIABLES if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")),
        None,
    )
    if offline:
        return f"{offline} is set"
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as error:
        return f"{constants.ENDPOINT} is out of reach ({type(error).__name__})"
    return None


def _missing(path: str) -> str:
    return (
        f"no file at {expand_path(path)} "
        f"(set {DATA_VARIABLE} to the folder holding pubmedqa/ and wikitext-2/, or give the path)"
    )


def read_samples(node: DictConfig, **overrides: Any) -> list[Sample]:
    """The samples of a dataset node (interpolations resolved, `overrides` applied); a configured
    local file that does not exist gives way to the hub: the default paths point at the per-user
    data directory, which a machine may not have filled."""
    config = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    for key, value in overrides.items():
        config[key] = value
    missing = None
    if config.get("path") and not expand_path(config.path).is_file() and config.get("hub_id"):
        unusable = _hub_unusable()
        if unusable:
            raise DatasetError(f"{_missing(config.path)}; the hub cannot stand in: {unusable}")
        log.info("%s; reading %s from the hub instead", _missing(config.path), config.hub_id)
        missing, config.path = config.path, None
    try:
        return registry.datasets().get(config.loader).load(config)
    except DatasetError as error:
        if missing is None:
            raise
        raise DatasetError(f"{_missing(missing)}, and the hub did not give it: {error}") from None
