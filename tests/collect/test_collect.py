"""The collector on a synthetic sweep directory: ok, skipped, failed, unfinished and corrupt jobs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from quantbench.cli.collect import main
from quantbench.collect.sweeps import METRIC_COLUMNS, SUMMARY_CSV, SUMMARY_PARQUET, collect_sweep, write_summary
from quantbench.jobdir import JobResult, write_result


def make_job(sweep: Path, number: int, status: str, precision: str, batch: int, **metrics) -> Path:
    job_dir = sweep / str(number)
    result = JobResult(
        status=status,
        reason=None if status == "ok" else f"{status} on purpose",
        identity={
            "model": "m",
            "precision": precision,
            "backend": precision,
            "family": "decoder",
            "batch": batch,
            "hardware": "cpu",
            "dataset": "builtin",
            "device": "cpu",
        },
        config={"batch": batch},
        config_hash=f"hash{number}",
        metrics=metrics,
    )
    write_result(job_dir, result)
    return job_dir


def synthetic_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    make_job(sweep, 0, "ok", "fp32", 1, qps=2.0, tokens_per_s=64, latency_p50_ms=500.0, cache_hit=False, kernel="torch")
    make_job(sweep, 1, "ok", "nf4", 1, qps=1.5, tokens_per_s=48.5, latency_p50_ms=650.0, cache_hit=True)
    make_job(sweep, 2, "skipped", "gptq", 1)
    make_job(sweep, 3, "failed", "int8", 1)
    unfinished = sweep / "4" / ".hydra"  # Hydra started this job; it never wrote a result
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text(
        "model: {name: m, family: decoder}\nprecision: {name: fp16, backend: fp16}\nbatch: 8\n"
    )
    corrupt = sweep / "5"
    corrupt.mkdir()
    (corrupt / "result.json").write_text("{not json")
    return sweep


def test_collect_builds_one_row_per_job(tmp_path):
    frame = collect_sweep(synthetic_sweep(tmp_path))
    assert frame.height == 6
    assert frame["status"].to_list() == ["ok", "ok", "skipped", "failed", "failed", "failed"]
    for column in ["model", "precision", "backend", "batch", "status", "reason", *METRIC_COLUMNS]:
        assert column in frame.columns
    # an int beside a float in one column becomes a float column
    assert frame.schema["tokens_per_s"] == pl.Float64
    assert frame.filter(pl.col("precision") == "nf4")["cache_hit"].item() is True
    unfinished = frame.filter(pl.col("precision") == "fp16")
    assert unfinished["batch"].item() == 8 and "did not finish" in unfinished["reason"].item()
    assert "unreadable" in frame["reason"][5]


def test_write_summary_writes_parquet_and_csv(tmp_path):
    sweep = synthetic_sweep(tmp_path)
    frame = write_summary(sweep)
    assert pl.read_parquet(sweep / SUMMARY_PARQUET).equals(frame)
    assert pl.read_csv(sweep / SUMMARY_CSV).height == 6
    assert not [path for path in sweep.iterdir() if path.name.endswith(".tmp")]


def test_collect_command(tmp_path, capsys):
    sweep = synthetic_sweep(tmp_path)
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "nf4" in out and "skipped on purpose" in out
    assert (sweep / SUMMARY_PARQUET).exists()


def test_collect_command_on_missing_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err


def test_result_json_has_no_nan(tmp_path):
    job_dir = make_job(tmp_path, 0, "ok", "fp32", 1, qps=float("nan"))
    data = json.loads((job_dir / "result.json").read_text())
    assert data["metrics"]["qps"] is None
