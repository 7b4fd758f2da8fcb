"""HQQ and AutoRound: the skipped reasons a missing library gives, and a group size that does not
divide a layer (one real sweep on tiny-llama: tests/e2e/test_hqq_autoround_sweep.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from quantbench.backends.base import LoadRequest, read_settings
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

pytest.importorskip("hqq")
pytest.importorskip("auto_round")


def _request(cfg, cache_dir: Path) -> LoadRequest:
    family = registry.families().get(cfg.model.family)
    model = resolve_model(cfg.model, family, cache_dir)
    return LoadRequest(
        model=model, family=family, precision=cfg.precision, device=resolve_device("cpu"), cache_dir=cache_dir
    )


def test_a_missing_library_is_the_skipped_reason_naming_the_install(monkeypatch):
    # None in sys.modules: the import fails exactly as when the package is not installed. The
    # reason is checked before anything loads and becomes the row's `reason` as it is.
    monkeypatch.setitem(sys.modules, "hqq", None)
    monkeypatch.setitem(sys.modules, "auto_round", None)
    cpu = resolve_device("cpu")
    assert (
        registry.backends().get("hqq").unavailable_reason(cpu)
        == "needs hqq (pip install hqq); module hqq not importable"
    )
    assert (
        registry.backends().get("autoround").unavailable_reason(cpu)
        == "needs auto-round (pip install auto-round); module auto_round not importable"
    )


def test_a_group_size_that_does_not_divide_a_layer_is_skipped_before_loading(compose_config, cache_dir):
    from quantbench.backends.hqq import hqq_group_size
    from quantbench.config.schema import HqqPrecisionConfig
    from quantbench.errors import JobSkipped

    request = _request(
        compose_config(["model=tiny-llama", "precision=hqq-4bit", "precision.group_size=512"]), cache_dir
    )
    with pytest.raises(JobSkipped, match="group size 512 does not divide input width 128"):
        hqq_group_size(read_settings(HqqPrecisionConfig, request.precision), request)
