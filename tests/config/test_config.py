"""Every shipped config option composes, and the schemas catch misspelt keys."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from quantbench.cli.overrides import prepare_arguments
from quantbench.config.compose import group_options
from quantbench.config.schema import register_configs
from quantbench.errors import QuantbenchError

GROUPS = ("model", "precision", "hardware", "dataset", "bench")


def shipped_options() -> list[tuple[str, str]]:
    register_configs()
    pairs = [(group, option) for group in GROUPS for option in group_options(group)]
    GlobalHydra.instance().clear()
    return pairs


@pytest.mark.parametrize(("group", "option"), shipped_options())
def test_every_shipped_option_composes(compose_config, group, option):
    cfg = compose_config([f"{group}={option}"])
    node = cfg[group]
    assert cfg.hydra.runtime.choices[group] == option
    if "name" in node:
        assert node.name, f"{group}/{option} has no name"
    # Resolving checks interpolations and types; MISSING values (e.g. local model path) may stay.
    OmegaConf.to_container(node, resolve=True, throw_on_missing=False)


def test_defaults_are_the_embedded_model_on_builtin_prompts(compose_config):
    cfg = compose_config([])
    assert cfg.model.name == "smollm2-135m"
    assert cfg.precision.name == "fp32"
    assert cfg.dataset.loader == "builtin"
    assert cfg.batch == 1


def test_precision_options_map_onto_backends(compose_config):
    expected = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "bnb-int8", "nf4": "bnb-nf4"}
    for precision, backend in expected.items():
        assert compose_config([f"precision={precision}"]).precision.backend == backend


def test_batch_is_a_top_level_key(compose_config):
    assert compose_config(["batch=32"]).batch == 32


@pytest.mark.parametrize("override", ["bench.warmpu_iterations=3", "precision.double_qant=false", "bacth=4"])
def test_misspelt_keys_are_errors(compose_config, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_config([override])


def test_wrong_type_is_an_error(compose_config):
    with pytest.raises(ConfigCompositionException, match="batch"):
        compose_config(["batch=many"])


def test_unknown_group_option_is_one_line_listing_choices():
    with pytest.raises(QuantbenchError) as raised:
        prepare_arguments(["-m", "precision=fp32,nf5", "batch=1,2"])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("unknown precision 'nf5'; did you mean 'nf4'? choose one of: ")
    for name in ("bf16", "fp16", "fp32", "int8", "nf4"):
        assert name in message
    assert "base_" not in message  # schemas are not choices


def test_known_choices_and_plain_keys_pass():
    arguments = ["-m", "precision=fp32,nf4", "batch=1,2", "bench.min_iterations=3", "model=tiny-llama"]
    assert prepare_arguments(arguments) == arguments
