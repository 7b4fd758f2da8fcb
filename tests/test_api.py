"""quantbench.api, the surface plugins build on: what it exports, plugin schemas in the ConfigStore,
missing-dependency reasons, and one-line errors for a plugin's options (the plugins' backends in
real jobs: tests/e2e/test_api_plugins.py)."""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError
from support import TESTS, dynamic_plugin
from support import quantizer_plugin as test_plugin
from support.distributions import install_test_plugin

from quantbench import api
from quantbench.cli.overrides import prepare_arguments
from quantbench.config import plugin_configs
from quantbench.config.compose import compose_option
from quantbench.config.schema import DensePrecisionConfig, register_configs

EXAMPLE_SOURCE = Path(__file__).resolve().parents[1] / "examples" / "quantbench-plugin-example" / "src"
QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false", "hardware=cpu"]
QUANTO_REASON = "needs optimum-quanto (pip install optimum-quanto); module optimum.quanto not importable"


def quantbench_modules_imported(source: Path) -> set[str]:
    """Every quantbench module a file imports, at the top or inside functions."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return {module for module in modules if module == "quantbench" or module.startswith("quantbench.")}


def test_the_example_plugin_imports_only_quantbench_api():
    sources = sorted(EXAMPLE_SOURCE.rglob("*.py"))
    assert any(source.name == "backend.py" for source in sources)
    imported = {source.name: quantbench_modules_imported(source) for source in sources}
    assert set().union(*imported.values()) == {"quantbench.api"}, imported


def test_the_api_exports_resolve_without_importing_torch():
    # A fresh interpreter: this test process has imported torch long ago.
    code = (
        "import sys, quantbench.api as api\n"
        "missing = [name for name in api.__all__ if name != 'FirstTokenClock' and not hasattr(api, name)]\n"
        "print(missing, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "[] []"
    assert api.FirstTokenClock.__name__ == "FirstTokenClock"  # imported on first use


def test_a_missing_parent_package_is_a_reason_not_an_exception():
    requirement = api.Requirement("qb-absent-quantizer", module="qb_absent_parent_package.quantizer")
    assert api.missing_package_reason(requirement) == (
        "needs qb-absent-quantizer (pip install qb-absent-quantizer); "
        "module qb_absent_parent_package.quantizer not importable"
    )


def test_the_reason_names_the_package_to_install_and_the_module_to_import():
    if importlib.util.find_spec("optimum") and importlib.util.find_spec("optimum.quanto"):
        pytest.skip("optimum-quanto is installed here")
    quanto = api.Requirement("optimum-quanto", module="optimum.quanto")
    assert api.missing_package_reason("json", quanto, "qb_absent_too") == QUANTO_REASON  # the first one missing
    assert api.missing_package_reason("json", api.Requirement("omegaconf")) is None
    pinned = api.Requirement("qb_absent_engine", install="pip install 'quantbench[qb-absent]'")
    assert api.missing_package_reason(pinned) == (
        "needs qb_absent_engine (pip install 'quantbench[qb-absent]'); module qb_absent_engine not importable"
    )


def test_read_settings_types_a_plain_node_and_leaves_out_a_setting_it_does_not_use():
    # An isolated job reads its precision back from job.yaml as a plain node; a sweep's setting
    # (`-m precision=int8,nf4 precision.quant_type=fp4`) is carried by the options that lack it.
    plain = OmegaConf.create({"name": "q", "backend": "test-quanto", "weights": "int4", "quant_type": "fp4"})
    settings = api.read_settings(test_plugin.QuantoSettings, plain)
    assert isinstance(settings, test_plugin.QuantoSettings)
    assert (settings.name, settings.weights) == ("q", "int4")
    with pytest.raises(ValidationError, match="dynamic_activations"):  # a value of the wrong type is still an error
        api.read_settings(
            test_plugin.TorchAoInt8Settings,
            OmegaConf.create({"name": "q", "backend": "x", "dynamic_activations": "often"}),
        )


def error_output(run_app_args: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, str]:
    from support.app import run_app

    _, code = run_app(run_app_args, tmp_path, monkeypatch)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_a_misspelt_key_in_a_plugin_option_is_the_same_error_as_in_a_built_in_one(tmp_path, monkeypatch, capsys):
    install_test_plugin(tmp_path / "dist", monkeypatch)
    plugin_code, plugin_error = error_output([*QUICK, "precision=test-int8-typo"], tmp_path / "a", monkeypatch, capsys)
    builtin_code, builtin_error = error_output([*QUICK, "precision=dense-typo"], tmp_path / "b", monkeypatch, capsys)
    assert plugin_code == builtin_code != 0
    assert "dynamic_activation" in plugin_error and "TorchAoInt8Settings" in plugin_error
    normalised = (
        plugin_error.replace("test-int8-typo", "OPTION")
        .replace("dynamic_activations", "NEAREST")
        .replace("dynamic_activation", "KEY")
        .replace("TorchAoInt8Settings", "SCHEMA")
    )
    expected = (
        builtin_error.replace("dense-typo", "OPTION")
        .replace("dtype", "NEAREST")
        .replace("dtyp", "KEY")
        .replace("DensePrecisionConfig", "SCHEMA")
    )
    assert normalised == expected


def test_a_broken_or_clashing_plugin_schema_is_one_warning_and_the_others_register(monkeypatch, caplog):
    group = plugin_configs.SCHEMAS_GROUP
    module = test_plugin.__name__
    fake = [
        EntryPoint("test_broken", "qb_no_such_schema_module:Settings", group),
        EntryPoint("dense", f"{module}:QuantoSettings", group),  # would replace quantbench's base_dense
        EntryPoint("test_backend_class", f"{module}:QuantoBackend", group),  # not a schema
        EntryPoint("test_fine", f"{module}:QuantoSettings", group),
    ]
    monkeypatch.setattr(
        plugin_configs.metadata, "entry_points", lambda group: fake if group == plugin_configs.SCHEMAS_GROUP else []
    )
    with caplog.at_level(logging.WARNING, logger="quantbench.config.schema"):
        register_configs()
    store = ConfigStore.instance()
    assert OmegaConf.get_type(store.load("precision/base_test_fine.yaml").node) is test_plugin.QuantoSettings
    assert OmegaConf.get_type(store.load("precision/base_dense.yaml").node) is DensePrecisionConfig
    assert store.get_type("precision/base_test_backend_class.yaml").name == "NOT_FOUND"
    warnings = [message for message in caplog.messages if "not registered" in message]
    assert len(warnings) == 3 and all("\n" not in message for message in warnings)
    by_name = {
        name: next(m for m in warnings if f"'{name}'" in m)
        for name in ("base_test_broken", "base_dense", "base_test_backend_class")
    }
    assert (
        "ModuleNotFoundError" in by_name["base_test_broken"]
        and "qb_no_such_schema_module" in by_name["base_test_broken"]
    )
    assert "precision/base_dense.yaml is taken by quantbench; rename the entry point" in by_name["base_dense"]
    assert "is not a dataclass extending one of PrecisionConfig" in by_name["base_test_backend_class"]


def test_a_new_option_of_a_built_in_backend_is_a_yaml_file_alone(tmp_path, monkeypatch):
    # tests/fixtures/plugin_conf/precision/quanto-float8.yaml: base_quanto and backend quanto, no Python.
    install_test_plugin(tmp_path / "dist", monkeypatch)
    assert prepare_arguments(["precision=quanto-float8"]) == [
        "precision=quanto-float8"
    ]  # a plugin's option: composed here
    option = compose_option("precision", "quanto-float8")
    assert (option.backend, option.weights) == ("quanto", "float8")


# --- one line for a mistake in a plugin's option (README: "names the closest valid one") ---------


def test_an_unknown_precision_is_one_line_naming_the_closest_option(tmp_path, monkeypatch):
    install_test_plugin(tmp_path / "dist", monkeypatch)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "dist"), str(TESTS)])}
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench", "precision=torch-dynamic-int9", f"hydra.run.dir={tmp_path / 'run'}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(
        "quantbench: unknown precision 'torch-dynamic-int9'; did you mean 'torch-dynamic-int8'? choose one of: "
    )
    assert "fp32" in lines[0] and "base_" not in lines[0]


def test_a_misspelt_key_in_a_plugin_yaml_is_one_line_naming_the_key_the_file_and_the_closest_key(
    tmp_path, monkeypatch, capsys
):
    install_test_plugin(tmp_path / "dist", monkeypatch)
    code, output = error_output([*QUICK, "precision=test-int8-typo"], tmp_path / "run", monkeypatch, capsys)
    assert code == 2
    file = tmp_path / "dist" / "qb_test_plugin_conf" / "precision" / "test-int8-typo.yaml"
    assert [line for line in output.splitlines() if line.strip()] == [
        f"quantbench: unknown key 'dynamic_activation' in {file} "
        "(precision=test-int8-typo, schema TorchAoInt8Settings); "
        "did you mean 'dynamic_activations'?"
    ]
    # In a sweep too, before any job runs.
    code, output = error_output(
        ["-m", *QUICK, "precision=fp32,test-int8-typo"], tmp_path / "sweep", monkeypatch, capsys
    )
    assert (
        code == 2
        and "unknown key 'dynamic_activation' in " in output
        and not (tmp_path / "sweep" / "multirun").exists()
    )


def test_the_dynamic_backend_is_unavailable_on_a_gpu_with_the_reason():
    backend = dynamic_plugin.TorchDynamicBackend()
    gpu = api.Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), 85.0)
    assert (
        backend.unavailable_reason(gpu)
        == "torch dynamic quantization runs on CPU only; this device: cuda:0 (NVIDIA H100 80GB HBM3)"
    )
    assert backend.unavailable_reason(api.Device("cpu", None, "a CPU")) is None
    assert isinstance(backend, api.Backend)  # the protocol, without inheriting anything
