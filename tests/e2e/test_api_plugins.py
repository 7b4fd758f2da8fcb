"""Backends written on quantbench.api (tests/support/quantizer_plugin.py, dynamic_plugin.py), registered
through a test-made distribution, running real jobs through the real app (the API itself: tests/test_api.py)."""

from __future__ import annotations

import importlib.util

import polars as pl
import pytest
from support.distributions import install_test_plugin

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false", "hardware=cpu"]
QUANTO_REASON = "needs optimum-quanto (pip install optimum-quanto); module optimum.quanto not importable"


# ~17 s on 2 cores; tests/e2e/test_example_plugin.py runs a QuantizerConfigBackend plugin by default.
@pytest.mark.slow
def test_a_quantizer_config_backend_runs_through_the_real_app(tmp_path, run_quantbench, monkeypatch):
    install_test_plugin(tmp_path / "dist", monkeypatch)
    sweep = run_quantbench(["-m", *QUICK, "precision=fp32,test-int8,test-quanto-int8"], tmp_path)
    rows = {row["precision"]: row for row in pl.read_parquet(sweep / "summary.parquet").iter_rows(named=True)}
    assert rows["test-int8"]["status"] == "ok", rows["test-int8"]["reason"]
    assert rows["test-int8"]["backend"] == "test-torchao-int8"
    # int8 decoder layers: clearly smaller than fp32, though the embeddings stay fp32
    assert rows["test-int8"]["weight_memory_gb"] < 0.7 * rows["fp32"]["weight_memory_gb"]
    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.quanto") is None:
        assert (rows["test-quanto-int8"]["status"], rows["test-quanto-int8"]["reason"]) == ("skipped", QUANTO_REASON)


def test_a_backend_of_its_own_runs_a_real_job_and_its_packed_weights_are_measured(
    tmp_path, run_quantbench, monkeypatch, compose_config
):
    # quantize_dynamic's layers keep their int8 weights packed in a C++ object, not as parameters:
    # bits_per_weight is measured through their weight(), never 0, and weight memory counts them.
    install_test_plugin(tmp_path / "dist", monkeypatch)
    sweep = run_quantbench(["-m", *QUICK, "precision=fp32,torch-dynamic-int8"], tmp_path)
    rows = {row["precision"]: row for row in pl.read_parquet(sweep / "summary.parquet").iter_rows(named=True)}
    dynamic, fp32 = rows["torch-dynamic-int8"], rows["fp32"]
    assert dynamic["status"] == "ok", dynamic["reason"]
    assert (dynamic["backend"], dynamic["torch_dynamic_weights"], dynamic["compute_dtype"]) == (
        "torch-dynamic",
        "qint8",
        "float32",
    )
    assert dynamic["bits_per_weight"] == pytest.approx(8.0)  # int8 values, one scale per layer
    assert dynamic["kernel"] == "torch DynamicQuantizedLinear qint8"
    # Each block linear weight goes from 4 bytes to 1; the embeddings and the output head stay float32.
    arch = compose_config(["model=tiny-llama"]).model.architecture
    hidden, kv_width = arch.hidden_size, arch.hidden_size * arch.num_key_value_heads // arch.num_attention_heads
    block_weights = arch.num_hidden_layers * (
        2 * hidden * hidden + 2 * hidden * kv_width + 3 * hidden * arch.intermediate_size
    )
    assert dynamic["weight_memory_gb"] == pytest.approx(fp32["weight_memory_gb"] - 3 * block_weights / 1e9, rel=1e-6)
