"""Entry-point discovery with real and fake entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from quantbench.config import registry
from quantbench.errors import PluginLoadError, UnknownPluginError


def fake(name: str, value: str, group: str = registry.BACKENDS_GROUP) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_builtins_are_registered_through_entry_points():
    backends = registry.backends().names()
    for name in ("fp32", "fp16", "bf16", "bnb-int8", "bnb-nf4"):
        assert name in backends
    assert "decoder" in registry.families().names()
    assert {"builtin", "pubmedqa"} <= set(registry.datasets().names())
    plugin = registry.backends().plugin("fp32")
    assert plugin.package == "quantbench" and plugin.version


def test_get_instantiates_the_entry_point_class():
    reg = registry.Registry(registry.BACKENDS_GROUP, [fake("fp32", "quantbench.backends.dense:Float32Backend")])
    backend = reg.get("fp32")
    assert backend.name == "fp32" and backend.dtype == "float32"
    assert reg.get("fp32") is backend  # imported and instantiated once


def test_unknown_name_is_one_line_listing_choices():
    reg = registry.Registry(
        registry.BACKENDS_GROUP,
        [fake("b", "quantbench.backends.dense:Float16Backend"), fake("a", "quantbench.backends.dense:Float32Backend")],
    )
    with pytest.raises(UnknownPluginError) as error:
        reg.get("nf5")
    assert str(error.value) == "unknown backend 'nf5'; choose one of: a, b"


def test_a_plugin_that_fails_to_import_is_named_and_does_not_break_the_others():
    reg = registry.Registry(
        registry.BACKENDS_GROUP,
        [
            fake("broken", "support.broken_plugin_module:Backend"),
            fake("fp32", "quantbench.backends.dense:Float32Backend"),
        ],
    )
    assert reg.names() == ["broken", "fp32"]  # listing imports nothing
    with pytest.raises(PluginLoadError, match="backend 'broken'.*broken_plugin_module.*ImportError"):
        reg.get("broken")
    assert reg.get("fp32").name == "fp32"


def test_listing_does_not_import_plugin_modules():
    import sys

    reg = registry.Registry(registry.BACKENDS_GROUP, [fake("lazy", "plugins_for_tests_lazy_never_imported:X")])
    assert reg.names() == ["lazy"]
    assert "plugins_for_tests_lazy_never_imported" not in sys.modules


def test_list_command_shows_every_plugin_and_the_matrix(capsys):
    from quantbench.cli.listing import main

    assert main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in ("fp32", "bnb-nf4", "decoder", "builtin", "pubmedqa", "backend x family"):
        assert name in out
    assert "quantbench" in out  # the package column


def test_console_command_dispatches_and_rejects_unknown_commands(capsys):
    from quantbench.cli.main import main

    assert main(["--help"]) == 0
    assert "collect" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'; choose one of:" in capsys.readouterr().err


class FakeDistribution:
    """What provenance() reads from an installed distribution: its name and version."""

    def __init__(self, name: str, version: str):
        self.metadata = {"Name": name}
        self.version = version


def from_package(name: str, value: str, package: str, version: str = "1.0") -> EntryPoint:
    return fake(name, value)._for(FakeDistribution(package, version))


def test_a_name_registered_by_two_packages_is_a_one_line_error_naming_both():
    from quantbench.errors import DuplicatePluginError

    entry_points = [
        from_package("torchao", "quantbench.backends.torchao:TorchAoBackend", "quantbench", "0.1.0"),
        from_package("torchao", "quantbench_torchao.backend:TorchAoBackend", "quantbench-torchao", "0.2.0"),
    ]
    with pytest.raises(DuplicatePluginError) as error:
        registry.Registry(registry.BACKENDS_GROUP, entry_points)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("backend 'torchao' is registered twice: by package quantbench 0.1.0")
    assert "package quantbench-torchao 0.2.0 (quantbench_torchao.backend:TorchAoBackend)" in message


def test_the_same_package_seen_twice_is_one_registration():
    twice = [from_package("fp32", "quantbench.backends.dense:Float32Backend", "quantbench")] * 2
    assert registry.Registry(registry.BACKENDS_GROUP, twice).names() == ["fp32"]


def test_a_duplicate_config_package_or_schema_is_the_same_error():
    from quantbench.config.plugin_configs import plugin_schemas
    from quantbench.errors import DuplicatePluginError

    schemas = [
        from_package("torchao", "quantbench.config.schema:TorchAoPrecisionConfig", "one-plugin"),
        from_package("torchao", "quantbench.config.schema:QuantoPrecisionConfig", "other-plugin"),
    ]
    with pytest.raises(
        DuplicatePluginError, match="schema 'torchao' is registered twice: by package one-plugin .* other-plugin"
    ):
        plugin_schemas(schemas)


def test_list_stops_with_the_duplicate_error_and_exit_code_2(monkeypatch, capsys):
    from quantbench.cli.listing import main

    duplicated = [
        from_package("fp32", "quantbench.backends.dense:Float32Backend", "quantbench", "0.1.0"),
        from_package("fp32", "other_plugin.backend:Float32", "other-plugin", "2.0"),
    ]
    monkeypatch.setattr(registry, "registry", lambda group: registry.Registry(group, duplicated))
    assert main(["--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("quantbench list: backend 'fp32' is registered twice: by package quantbench 0.1.0")
    assert "other-plugin 2.0" in error and "\n" not in error


def test_the_app_stops_with_one_line_when_two_packages_register_one_config_package(tmp_path, monkeypatch, capsys):
    """Two real (metadata-only) distributions on sys.path registering the same `quantbench.configs` name."""
    from support.app import run_app

    for package in ("qb-dup-one", "qb-dup-two"):
        dist_info = tmp_path / "dist" / f"{package.replace('-', '_')}-0.1.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
        (dist_info / "entry_points.txt").write_text(
            f"[quantbench.configs]\nqb-dup = {package.replace('-', '_')}_conf\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path / "dist"))
    _, code = run_app(["model=tiny-llama", "precision=fp32"], tmp_path / "run", monkeypatch)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error[-1].startswith("quantbench: config package 'qb-dup' is registered twice: by package qb-dup-")
    assert "qb-dup-one 0.1" in error[-1] and "qb-dup-two 0.1" in error[-1]
