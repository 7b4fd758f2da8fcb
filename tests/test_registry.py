"""Entry-point discovery with real and fake entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from quantbench import registry
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
        [fake("broken", "broken_plugin_module:Backend"), fake("fp32", "quantbench.backends.dense:Float32Backend")],
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
    from quantbench.list import main

    assert main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in ("fp32", "bnb-nf4", "decoder", "builtin", "pubmedqa", "backend x family"):
        assert name in out
    assert "quantbench" in out  # the package column


def test_console_command_dispatches_and_rejects_unknown_commands(capsys):
    from quantbench.cli import main

    assert main(["--help"]) == 0
    assert "collect" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'; choose one of:" in capsys.readouterr().err
