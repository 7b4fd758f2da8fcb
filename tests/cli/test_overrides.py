"""Command-line overrides read with Hydra's own grammar: sweeps, lists, +/++/~, quoted values,
settings of swept groups, and one-line errors for typos, renamed keys and unknown options."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

import hydra
import pytest
from hydra.core.config_store import ConfigStore

from quantbench.cli.overrides import prepare_arguments
from quantbench.config import plugin_configs
from quantbench.config.schema import RENAMED_KEYS, DensePrecisionConfig
from quantbench.errors import QuantbenchError


def error_of(arguments: list[str]) -> str:
    with pytest.raises(QuantbenchError) as raised:
        prepare_arguments(arguments)
    message = str(raised.value)
    assert "\n" not in message, message
    return message


# --- Hydra's grammar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["-m", "precision=fp32,nf4", "batch=1,4"],  # choice sweeps
        ["-m", "batch=range(1,3)", "bench.max_new_tokens=choice(4,8)"],  # sweep functions
        ["quality=[ppl,kld]", "quality.limit=3"],  # a list selects both: no sweep, no -m needed
        ["-m", "quality=[ppl],[ppl,kld]"],  # a sweep over lists
        ["+new.key=1", "++bench.extra=2", "~quality"],  # add, force-add, delete: Hydra's to judge
        ["+model.architecture.extra_knob=1", "model.architecture.extra_knob=2"],  # a key added here, then set
        ['model.note="a,b"', "dataset.path='x,y.json'"],  # quoted commas are text, not sweeps
        ["hydra.job.chdir=true", "hydra/launcher=basic"],  # Hydra's own config
        ["--cfg", "job", "precision=nf4", "precision.quant_type=fp4"],  # flags around overrides
    ],
)
def test_valid_command_lines_pass_unchanged(arguments):
    assert prepare_arguments(arguments) == arguments


def test_another_config_source_is_left_to_hydra(tmp_path):
    for arguments in (
        ["-cd", str(tmp_path), "precision=site-only"],
        [f"hydra.searchpath=[file://{tmp_path}]", "precision=site-only"],
    ):
        assert prepare_arguments(arguments) == arguments


def test_a_quoted_group_value_is_one_option_not_a_sweep():
    assert error_of(["-m", "precision='fp32,nf4'"]).startswith(
        "unknown precision 'fp32,nf4'; did you mean 'fp32'? choose one of: "
    )


def test_every_element_of_a_list_or_a_sweep_is_checked():
    assert error_of(["precision=[fp32,nf5]"]).startswith("unknown precision 'nf5'")
    assert error_of(["-m", "quality=[ppl],[ppl,kdl]"]).startswith(
        "unknown quality 'kdl'; did you mean 'kld'? choose one of: kld, ppl, pubmedqa"
    )
    assert error_of(["+precision=nf5"]).startswith("unknown precision 'nf5'")


def test_a_glob_over_a_group_is_spelt_out_without_schemas():
    assert prepare_arguments(["-m", "precision=glob(fp*)", "batch=1,2"]) == [
        "-m",
        "precision=fp16,fp32,fp4,fp8",
        "batch=1,2",
    ]
    (listed,) = prepare_arguments(["-m", "precision=glob(*)"])[1:]
    assert "fp32" in listed and "nf4" in listed and "base_" not in listed  # Hydra's own glob would sweep the schemas
    assert error_of(["-m", "precision=glob(zz*)"]).startswith("'precision=glob(zz*)' matches no precision option")


def test_a_sweep_without_multirun_is_one_line():
    assert error_of(["precision=fp32,nf4"]) == (
        "'precision=fp32,nf4' is a sweep: add -m to run one job per value, "
        "or quote a value that holds commas (key='a,b')"
    )
    assert prepare_arguments(["hydra.mode=MULTIRUN", "precision=fp32,nf4"])[1] == "precision=fp32,nf4"


@pytest.mark.parametrize("text", ["precision=[fp32", "batch=range(x)", "a=b=c"])
def test_what_the_grammar_cannot_read_is_one_line(text):
    assert error_of([text]).startswith(f"cannot read the override '{text}': ")


# --- settings of swept groups (docs/configuration.md) ---------------------------------------


def test_a_setting_of_a_swept_group_goes_to_the_options_that_have_it():
    arguments = ["-m", "precision=fp32,gptq,awq", "precision.calibration.n_samples=64", "batch=1,2"]
    assert prepare_arguments(arguments) == [
        "-m",
        "precision=fp32,gptq,awq",
        "++precision.calibration.n_samples=64",
        "batch=1,2",
    ]


def test_a_key_no_swept_option_has_is_one_line_naming_the_nearest():
    assert error_of(["-m", "precision=fp32,gptq", "precision.calibration.n_sampls=3"]) == (
        "'precision.calibration.n_sampls' is not a setting of any swept precision (fp32, gptq); "
        "did you mean 'precision.calibration.n_samples'?"
    )


def test_configs_are_composed_only_where_a_key_is_set(monkeypatch):
    composed = []
    real_compose = hydra.compose
    monkeypatch.setattr(
        hydra, "compose", lambda *args, **kwargs: composed.append(kwargs["overrides"]) or real_compose(*args, **kwargs)
    )
    prepare_arguments(["-m", "precision=fp32,nf4", "model=tiny-llama"])
    assert composed == []  # group choices: the option lists suffice
    prepare_arguments(["-m", "precision=gptq,fp32", "precision.calibration.n_samples=64", "batch=1,2"])
    assert composed == [["precision=gptq"]]  # the first swept option has the setting: one config
    composed.clear()
    prepare_arguments(["-m", "precision=fp32,nf4,gptq", "precision.calibration.n_samples=64"])
    assert composed == [["precision=fp32"], ["precision=nf4"], ["precision=gptq"]]


# --- typos and renamed keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["precison=fp16"], "unknown key or group 'precison'; did you mean 'precision'?"),
        (["bacth=4"], "unknown key or group 'bacth'; did you mean 'batch'?"),
        (["bench.max_new_tokenz=8"], "unknown key 'bench.max_new_tokenz'; did you mean 'bench.max_new_tokens'?"),
        (
            ["benhc.max_new_tokens=8"],
            "unknown key or group 'benhc.max_new_tokens'; did you mean 'bench.max_new_tokens'?",
        ),
        (
            ["precision=nf4", "precision.quant_tpye=fp4"],
            "unknown key 'precision.quant_tpye'; did you mean 'precision.quant_type'?",
        ),
        (
            ["model=tiny-llama", "model.architecture.hidden_sise=8"],
            "unknown key 'model.architecture.hidden_sise'; did you mean 'model.architecture.hidden_size'?",
        ),
        (
            ["-m", "precision=fp32,nf4", "bench.warmpu_iterations=1"],
            "unknown key 'bench.warmpu_iterations'; did you mean 'bench.warmup_iterations'?",
        ),
    ],
)
def test_a_misspelt_key_names_the_closest_valid_one(arguments, message):
    assert error_of(arguments) == message


def test_a_key_with_nothing_close_lists_the_keys_there_without_hydras_append_advice():
    message = error_of(["bench.zzzzzz=1"])
    assert message.startswith("unknown key 'bench.zzzzzz'; the keys at 'bench' are: ")
    assert "max_new_tokens" in message and "+" not in message and "append" not in message


def test_a_key_under_an_unselected_node_says_so():
    assert error_of(["quality.kld.top_k=4"]) == (
        "cannot set 'quality.kld.top_k'; 'quality.kld' is null in this config; select an option that fills it first"
    )
    assert prepare_arguments(["quality=[kld]", "quality.kld.top_k=4"]) == ["quality=[kld]", "quality.kld.top_k=4"]


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED_KEYS.items()))
def test_a_renamed_key_names_its_new_name(old, new):
    assert error_of([f"{old}=1"]) == f"'{old}' was renamed to '{new}'"
    assert error_of(["-m", "batch=1,2", f"++{old}=1"]) == f"'{old}' was renamed to '{new}'"


def test_the_entry_point_prints_a_typo_as_one_line_and_exits_2():
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench", "precison=fp16"], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert lines == ["quantbench: unknown key or group 'precison'; did you mean 'precision'?"], completed.stderr
    assert completed.stdout == ""


# --- options and keys that a plugin's conf tree adds -----------------------------------------


@dataclass
class KnobbedPrecisionConfig(DensePrecisionConfig):
    site_knob: int = 1


@pytest.fixture
def site_plugin(tmp_path, monkeypatch):
    """A conf tree registered like an installed plugin's (quantbench.configs), with its own schema."""
    tree = tmp_path / "site_conf_for_overrides"
    (tree / "precision").mkdir(parents=True)
    (tree / "__init__.py").write_text("")
    (tree / "precision" / "knobbed.yaml").write_text(
        "defaults:\n  - base_knobbed\n  - _self_\n\nname: knobbed\nbackend: fp32\ndtype: float32\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ConfigStore.instance().store(group="precision", name="base_knobbed", node=KnobbedPrecisionConfig)
    entry_point = metadata.EntryPoint("site", tree.name, plugin_configs.CONFIGS_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **kwargs: [entry_point] if kwargs.get("group") == plugin_configs.CONFIGS_GROUP else real(**kwargs),
    )


def test_a_plugins_options_and_keys_are_checked_like_built_in_ones(site_plugin):
    assert prepare_arguments(["precision=knobbed", "precision.site_knob=3"]) == [
        "precision=knobbed",
        "precision.site_knob=3",
    ]
    assert prepare_arguments(["-m", "precision=fp32,knobbed", "precision.site_knob=3"])[2] == "++precision.site_knob=3"
    assert error_of(["precision=knobbed", "precision.site_knbo=3"]) == (
        "unknown key 'precision.site_knbo'; did you mean 'precision.site_knob'?"
    )
    assert "knobbed" in error_of(["precision=nf5"])
