"""Random-init models at real sizes: their shipped configs count the real models' parameters (on the
meta device: llama-8b-random does not fit this machine in fp32), a model that cannot fit is a
skipped job, a padded vocabulary decodes every id, and quality metrics are refused."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from quantbench.device import Device
from quantbench.errors import JobSkipped
from quantbench.models import random_init

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


def test_a_padded_vocabulary_runs_decodes_and_refuses_quality(tmp_path, run_quantbench):
    """A tiny decoder with a vocabulary larger than its trained tokenizer, marked speed_only, asked
    for perplexity: the job runs, every id decodes, and quality is skipped with the reason."""
    run = run_quantbench(
        ["model=tiny-llama", "bench=quick", "batch=1", "+model.architecture.vocab_size=700",
         "model.speed_only=true", "quality=[ppl]", "analysis.report_at_end=false"],
        tmp_path,
    )
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert not [name for name in metrics if name.startswith("ppl")]
    assert metrics["quality_skipped"].startswith("ppl: model 'tiny-llama' has random weights (model.speed_only=true)")

    from transformers import AutoTokenizer

    from quantbench.cache import cache_root

    [entry] = [path for path in (cache_root(result["config"]["cache_dir"]) / "models").glob("tiny-llama-*")
               if json.loads((path / "config.json").read_text())["vocab_size"] == 700]
    tokenizer = AutoTokenizer.from_pretrained(entry)
    assert len(tokenizer) == 700
    assert tokenizer.decode([699]) == "<unused_699>"
    assert all(token_id < 512 for token_id in tokenizer("What is the answer?").input_ids)  # text never encodes to padding
