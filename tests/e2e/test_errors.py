"""Every bad input named in the core issue: a clear one-line error or a recorded row with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import polars as pl
import pytest

from quantbench.config import registry

QUICK = ["model=tiny-llama", "bench=quick", "dataset.limit=8"]


def test_unknown_precision_exits_nonzero_with_one_line():
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench", "precision=nf5"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode != 0
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("quantbench: unknown precision 'nf5'; did you mean 'nf4'? choose one of: ")
    assert "fp32" in lines[0] and "base_" not in lines[0]


def test_malformed_dataset_in_a_job_is_a_failed_row(tmp_path, run_quantbench):
    bad = tmp_path / "bad.json"
    bad.write_text("{broken")
    run_dir = run_app_expect_failure(run_quantbench, tmp_path, [*QUICK, "dataset=pubmedqa", f"dataset.path={bad}"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed"
    assert "DatasetError" in result["reason"] and str(bad) in result["reason"]


def run_app_expect_failure(run_quantbench, tmp_path, args):
    with pytest.raises(AssertionError, match="exited with 1"):
        run_quantbench(args, tmp_path)
    return tmp_path / "run"


def install_test_backends(monkeypatch):
    """The real backends plus three broken ones, as if a user had installed bad plugins."""
    extra = [
        EntryPoint("needs-missing", "support.faulty_plugins:NeedsMissingPackage", registry.BACKENDS_GROUP),
        EntryPoint("raises-while-loading", "support.faulty_plugins:RaisesWhileLoading", registry.BACKENDS_GROUP),
        EntryPoint("import-error", "support.broken_plugin_module:Backend", registry.BACKENDS_GROUP),
    ]
    real = list(entry_points(group=registry.BACKENDS_GROUP))
    test_registry = registry.Registry(registry.BACKENDS_GROUP, real + extra)
    monkeypatch.setattr(registry, "backends", lambda: test_registry)


def test_a_sweep_with_broken_plugins_and_missing_dependencies_still_collects(tmp_path, run_quantbench, monkeypatch):
    install_test_backends(monkeypatch)
    # In-process: the monkeypatched registry does not reach an isolated job's child process.
    sweep = run_quantbench(
        [
            "-m",
            *QUICK,
            "bench.isolation=none",
            "precision=fp32",
            "precision.backend=fp32,needs-missing,raises-while-loading,import-error,nope",
        ],
        tmp_path,
    )
    frame = pl.read_parquet(sweep / "summary.parquet").sort("backend")
    by_backend = {row["backend"]: row for row in frame.iter_rows(named=True)}
    assert by_backend["fp32"]["status"] == "ok"
    assert by_backend["needs-missing"]["status"] == "skipped"
    assert "quantbench_not_a_real_package" in by_backend["needs-missing"]["reason"]
    assert by_backend["raises-while-loading"]["status"] == "failed"
    assert "broken on purpose" in by_backend["raises-while-loading"]["reason"]
    assert by_backend["import-error"]["status"] == "failed"
    assert "backend 'import-error'" in by_backend["import-error"]["reason"]
    assert by_backend["nope"]["status"] == "failed"
    assert "unknown backend 'nope'; choose one of:" in by_backend["nope"]["reason"]


def test_unreachable_hub_model_is_a_clear_failed_row(tmp_path, run_quantbench, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here either way; offline fails fast
    run_dir = run_app_expect_failure(run_quantbench, tmp_path, ["model=phi-2", "bench=quick"])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed"
    assert "cannot load model 'microsoft/phi-2' from the Hugging Face hub" in result["reason"]


def test_missing_local_model_directory(tmp_path, run_quantbench):
    run_dir = run_app_expect_failure(
        run_quantbench, tmp_path, ["model=local", f"model.path={tmp_path / 'none'}", "bench=quick"]
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert "no transformers model at" in result["reason"]


def test_nf4_on_cpu_with_layer_widths_its_kernels_cannot_tile_is_skipped_with_the_remedy(tmp_path, run_quantbench):
    # intermediate 96: down_proj's input width is not a multiple of 64, which bitsandbytes' CPU
    # kernel only reports as an opaque reshape error at the first forward pass.
    sweep = run_quantbench(
        [
            "-m",
            *QUICK,
            "model.architecture.intermediate_size=96",
            "precision=nf4",
            "precision.skip_modules=[lm_head],[lm_head,down_proj]",
        ],
        tmp_path,
    )
    by_job = {
        Path(row["job_dir"]).name: row for row in pl.read_parquet(sweep / "summary.parquet").iter_rows(named=True)
    }
    default, remedied = by_job["0"], by_job["1"]
    assert default["status"] == "skipped"
    assert "multiple of 64" in default["reason"] and "model.layers.0.mlp.down_proj (96->128)" in default["reason"]
    assert "precision.skip_modules=[lm_head,down_proj]" in default["reason"]
    assert remedied["status"] == "ok"  # the remedy the reason names works
