"""Random-init models at real sizes: their shipped configs count the real models' parameters (on the
meta device: llama-8b-random does not fit this machine in fp32), and a model that cannot fit is a
skipped job (a padded vocabulary in a real job: tests/e2e/test_random_models_job.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from quantbench.errors import JobSkipped
from quantbench.models import random_init
from quantbench.runtime.device import Device

# The real models' parameter counts (their model cards and safetensors indexes).
REAL_PARAMETERS = {"llama-1b-random": 1.24e9, "llama-8b-random": 8.03e9, "phi-2-random": 2.78e9}
CPU = Device("cpu", None, "test cpu")


@pytest.mark.parametrize("model", sorted(REAL_PARAMETERS))
def test_shipped_random_models_have_the_real_parameter_count(compose_config, model):
    cfg = compose_config([f"model={model}"])
    assert cfg.model.source == "random_init" and cfg.model.speed_only and "random weights" in cfg.model.note
    count = random_init.parameter_count(OmegaConf.to_container(cfg.model.architecture, resolve=True))
    assert count == pytest.approx(REAL_PARAMETERS[model], rel=0.01)


def test_a_model_that_does_not_fit_is_skipped_with_the_sizes(compose_config, monkeypatch):
    monkeypatch.setattr(random_init, "available_host_memory_bytes", lambda: 23e9)
    cfg = compose_config(["model=llama-8b-random", "precision=fp32"])
    with pytest.raises(JobSkipped) as skipped:
        random_init.check_fits(cfg.model, cfg.precision, CPU)
    message = str(skipped.value)
    assert "\n" not in message
    assert "llama-8b-random" in message and "8.03B parameters" in message
    assert "fp32 weights need 32.1 GB" in message and "23.0 GB of available host memory" in message
    # The same machine builds and loads the 1B model in fp32 (4.9 GB).
    small = compose_config(["model=llama-1b-random", "precision=fp32"])
    random_init.check_fits(small.model, small.precision, CPU)
    # On a GPU the weights must fit the GPU: 32 GB of fp32 fit an H200, not a 24 GB card.
    gpu = Device("cuda", 0, "test 24 GB GPU", (8, 9), 24.0)
    with pytest.raises(JobSkipped, match="test 24 GB GPU's memory"):
        random_init.check_fits(cfg.model, cfg.precision, gpu)
    monkeypatch.setattr(random_init, "available_host_memory_bytes", lambda: 64e9)
    random_init.check_fits(cfg.model, cfg.precision, Device("cuda", 0, "test H200", (9, 0), 150.0))
