"""HQQ (calibration-free) and AutoRound (calibrated once, cached) on tiny-llama: one real sweep with
KL divergence against fp32, the AutoRound checkpoint found in the cache by a second load, and the
skipped reasons a missing library gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA, sweep_rows
from quantbench import registry
from quantbench.backends.base import LoadRequest, read_settings
from quantbench.cache import entry_path, read_manifest
from quantbench.device import resolve_device
from quantbench.models.source import resolve_model

pytest.importorskip("hqq")
pytest.importorskip("auto_round")

QUICK = ["model=tiny-llama", "bench=quick", "hardware=cpu", "analysis.report_at_end=false"]
# AutoRound at its smallest: one tuning step on two 32-token windows (seconds, not minutes).
AUTOROUND_TINY = [
    "precision.iters=1",
    "precision.batch_size=2",
    "precision.calibration.n_samples=2",
    "precision.calibration.seq_len=32",
]
QUALITY = ["quality=[kld]", "quality.context_tokens=64", "quality.stride=48", "quality.max_tokens=128"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, dict]:
    """One in-process sweep of hqq-4bit and autoround-4bit; its summary rows by precision."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return sweep_rows(
        [*QUICK, "precision=hqq-4bit,autoround-4bit", *AUTOROUND_TINY, *QUALITY, f"quality.data_dir={SHARED_DATA}"],
        tmp_path_factory.mktemp("hqq-autoround"),
    )


@pytest.mark.parametrize("precision", ["hqq-4bit", "autoround-4bit"])
def test_the_precision_runs_on_cpu_and_differs_from_fp32(sweep, precision):
    row = sweep[precision]
    assert row["status"] == "ok", row["reason"]
    assert row["tokens_per_s"] > 0
    assert row["kld_reference"] == "fp32" and row["kld_mean"] > 0
    assert row["bits"] == 4
    # packed 4-bit weights plus a scale and a zero point per group of the decoder's Linear layers
    assert 4 < row["bits_per_weight"] < 6


def test_hqq_records_its_backend_and_group_size(sweep):
    row = sweep["hqq-4bit"]
    assert row["backend"] == "hqq" and row["group_size"] == 64  # tiny-llama names none: hqq's 64
    assert row["kernel"] == "HQQLinear pytorch backend, 4-bit, group 64, float32"
    assert row["quantize_s"] > 0


def test_autoround_checkpoint_is_cached_and_found_by_the_next_load(sweep, compose_config, cache_dir):
    row = sweep["autoround-4bit"]
    assert row["backend"] == "autoround" and row["kernel"].endswith("QuantLinear")
    assert row["checkpoint_size_gb"] > 0 and row["calibration_windows"] == 2

    request = _request(compose_config(["model=tiny-llama", "precision=autoround-4bit", *AUTOROUND_TINY]), cache_dir)
    backend = registry.backends().get("autoround")
    entry = entry_path(cache_dir, backend.recipe(request))
    assert entry.name == row["checkpoint"]
    manifest = read_manifest(entry)
    assert manifest["engine"] == "auto-round" and manifest["knobs"]["iters"] == 1
    assert manifest["built"]["quantize_s"] > 0

    loaded = backend.load(request)
    assert loaded.metrics["cache_hit"] is True and loaded.metrics["quantize_s"] == 0.0
    assert loaded.metrics["kernel"] == row["kernel"]

    from quantbench.cache_cli import main as cache_main

    listing = _stdout_of(lambda: cache_main(["list", "--cache-dir", str(cache_dir), "--kind", "quantized"]))
    assert entry.name in listing and "autoround 4-bit" in listing and "auto-round 0.16" in listing


def _request(cfg, cache_dir: Path) -> LoadRequest:
    family = registry.families().get(cfg.model.family)
    model = resolve_model(cfg.model, family, cache_dir)
    return LoadRequest(model=model, family=family, precision=cfg.precision, device=resolve_device("cpu"), cache_dir=cache_dir)


def _stdout_of(action) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert action() == 0
    return buffer.getvalue()


def test_a_missing_library_is_the_skipped_reason_naming_the_install(monkeypatch):
    # None in sys.modules: the import fails exactly as when the package is not installed. The
    # reason is checked before anything loads and becomes the row's `reason` as it is.
    monkeypatch.setitem(sys.modules, "hqq", None)
    monkeypatch.setitem(sys.modules, "auto_round", None)
    cpu = resolve_device("cpu")
    assert registry.backends().get("hqq").unavailable_reason(cpu) == "needs hqq (pip install hqq); module hqq not importable"
    assert (
        registry.backends().get("autoround").unavailable_reason(cpu)
        == "needs auto-round (pip install auto-round); module auto_round not importable"
    )


def test_a_group_size_that_does_not_divide_a_layer_is_skipped_before_loading(compose_config, cache_dir):
    from quantbench.backends.hqq import hqq_group_size
    from quantbench.errors import JobSkipped
    from quantbench.schema import HqqPrecisionConfig

    request = _request(compose_config(["model=tiny-llama", "precision=hqq-4bit", "precision.group_size=512"]), cache_dir)
    with pytest.raises(JobSkipped, match="group size 512 does not divide input width 128"):
        hqq_group_size(read_settings(HqqPrecisionConfig, request.precision), request)
