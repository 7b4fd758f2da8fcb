"""Metadata-only distributions on sys.path, registering the test plugins through real entry points as
an installed package would: quantbench's registry, its schema registration and its Hydra search-path
plugin all read them, and so does an isolated job's child process (it inherits the parent's sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support import FIXTURES, crashing_plugins, dynamic_plugin, quantizer_plugin

PLUGIN_CONF = FIXTURES / "plugin_conf"  # YAML options shown in docs/plugins.md


def install_test_plugin(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/support/quantizer_plugin.py and tests/support/dynamic_plugin.py as an installed
    package would register them, with a conf tree (tests/fixtures/plugin_conf, and options made here).

    A real distribution (metadata only) on sys.path: quantbench's registry, its schema
    registration and its Hydra search-path plugin all read the same entry points they would in use.
    """
    conf = directory / "qb_test_plugin_conf"
    (conf / "precision").mkdir(parents=True)
    (conf / "__init__.py").write_text("")
    options = {
        "test-int8": ("base_test_torchao_int8", "test-torchao-int8", "dynamic_activations: false"),
        "test-quanto-int8": ("base_test_quanto", "test-quanto", "weights: int8"),
        # a misspelt key in a plugin's option, and the same mistake in an option of a built-in schema
        "test-int8-typo": ("base_test_torchao_int8", "test-torchao-int8", "dynamic_activation: true"),
        "dense-typo": ("base_dense", "fp32", "dtype: float32\ndtyp: float16"),
    }
    for name, (schema, backend, settings) in options.items():
        (conf / "precision" / f"{name}.yaml").write_text(
            f"defaults:\n  - {schema}\n\nname: {name}\nbackend: {backend}\n{settings}\n"
        )
    for option in (PLUGIN_CONF / "precision").glob("*.yaml"):
        (conf / "precision" / option.name).write_text(option.read_text())
    dist_info = directory / "qb_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: qb-test-plugin\nVersion: 0.1\n")
    module, dynamic = quantizer_plugin.__name__, dynamic_plugin.__name__
    (dist_info / "entry_points.txt").write_text(
        "[quantbench.backends]\n"
        f"test-torchao-int8 = {module}:TorchAoInt8Backend\n"
        f"test-quanto = {module}:QuantoBackend\n"
        f"torch-dynamic = {dynamic}:TorchDynamicBackend\n"
        "[quantbench.schemas]\n"
        f"test_torchao_int8 = {module}:TorchAoInt8Settings\n"
        f"test_quanto = {module}:QuantoSettings\n"
        f"torch_dynamic = {dynamic}:TorchDynamicSettings\n"
        "[quantbench.configs]\n"
        "qb-test = qb_test_plugin_conf\n"
    )
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(
        sys.modules, conf.name, raising=False
    )  # an earlier test's tree, imported from its own directory


def install_crashing_backends(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution (metadata only) registering the crashing backends, on the import path.

    Monkeypatching the registry would not reach an isolated job's child process; a real
    distribution on sys.path does (the child inherits the parent's import path).
    """
    dist_info = directory / "quantbench_crash_tests-0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: quantbench-crash-tests\nVersion: 0\n")
    (dist_info / "entry_points.txt").write_text(
        "[quantbench.backends]\n"
        + "".join(
            f"{cls.name} = {crashing_plugins.__name__}:{cls.__name__}\n"
            for cls in (crashing_plugins.DiesWhenTold, crashing_plugins.Segfaults, crashing_plugins.Hangs)
        )
    )
    monkeypatch.syspath_prepend(str(directory))
