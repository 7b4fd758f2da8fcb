"""The job's config file (JOB_CONFIG_FILE): the resolved config written by the sweep's process and
read back by an isolated job's child, so both run the same values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantbench.atomic import write_bytes_atomic
from quantbench.jobdir.files import JOB_CONFIG_FILE


def write_job_config(job_dir: Path, config: dict[str, Any]) -> Path:
    """The resolved config, so an isolated job's child sees exactly the values the parent resolved
    (env vars, `${now:...}`, Hydra's own interpolations) without composing anything again."""
    path = Path(job_dir) / JOB_CONFIG_FILE
    write_bytes_atomic(path, OmegaConf.to_yaml(OmegaConf.create(config)).encode())
    return path


def load_job_config(job_dir: Path) -> DictConfig:
    path = Path(job_dir) / JOB_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected the {JOB_CONFIG_FILE} an isolated job writes")
    cfg = OmegaConf.load(path)
    OmegaConf.set_struct(cfg, True)  # as in the app: a misspelt key is an error, not None
    return cfg
