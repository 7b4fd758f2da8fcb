"""A plugin's config tree (an entry point of `quantbench.configs`) joins the search path of quantbench's
own config only, never another app's."""

from __future__ import annotations


def test_plugin_config_trees_join_only_quantbench_search_path(monkeypatch):
    from importlib.metadata import EntryPoint

    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    from hydra_plugins.quantbench_searchpath.quantbench_searchpath import QuantbenchSearchPathPlugin
    from quantbench.config import plugin_configs

    fake = [
        EntryPoint("zzz", "site_conf_b", plugin_configs.CONFIGS_GROUP),
        EntryPoint("aaa", "site_conf_a:ignored", plugin_configs.CONFIGS_GROUP),
    ]
    monkeypatch.setattr(
        plugin_configs.metadata, "entry_points", lambda group: fake if group == plugin_configs.CONFIGS_GROUP else []
    )

    def paths_after(main: str) -> list[str]:
        search_path = ConfigSearchPathImpl()
        search_path.append("hydra", "pkg://hydra.conf")
        search_path.append("main", main)
        QuantbenchSearchPathPlugin().manipulate_search_path(search_path)
        return [element.path for element in search_path.get_path()]

    assert paths_after("pkg://quantbench.conf")[-2:] == ["pkg://site_conf_a", "pkg://site_conf_b"]
    assert paths_after("file:///usr/lib/python3/site-packages/quantbench/conf")[-1] == "pkg://site_conf_b"
    assert paths_after("file:///home/me/other_app/conf") == ["pkg://hydra.conf", "file:///home/me/other_app/conf"]
