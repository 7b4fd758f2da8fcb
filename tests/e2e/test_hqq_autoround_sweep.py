"""HQQ (calibration-free) and AutoRound (calibrated once, cached) on tiny-llama: one real sweep with KL
divergence against fp32, and the AutoRound checkpoint found in the cache by a second load."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SHARED_DATA
from support.app import sweep_rows

from quantbench.backends.base import LoadRequest
from quantbench.cache import entry_path, read_manifest
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

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


# The module's sweep quantizes with both libraries (~60 s on 2 cores). By default,
# tests/backends/test_hqq_autoround.py checks their missing-library and group-size paths and
# tests/test_cache_entries.py AutoRound's cache entry.
pytestmark = pytest.mark.slow


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

    from quantbench.cli.cache import main as cache_main

    listing = _stdout_of(lambda: cache_main(["list", "--cache-dir", str(cache_dir), "--kind", "quantized"]))
    assert entry.name in listing and "autoround 4-bit" in listing and "auto-round 0.16" in listing


def _request(cfg, cache_dir: Path) -> LoadRequest:
    family = registry.families().get(cfg.model.family)
    model = resolve_model(cfg.model, family, cache_dir)
    return LoadRequest(
        model=model, family=family, precision=cfg.precision, device=resolve_device("cpu"), cache_dir=cache_dir
    )


def _stdout_of(action) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert action() == 0
    return buffer.getvalue()
