"""Several sweeps, one summary and one report: the hardware as an axis, ratios against a baseline
hardware with intervals, like with like; results of other quantbench versions merge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from support.report_text import ratio_rows, section
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.cli import main as cli
from quantbench.collect.sweeps import SUMMARY_PARQUET, SWEEP_COLUMN
from quantbench.config.schema import AnalysisConfig
from quantbench.report import write_report
from quantbench.report.recommend import Limits, recommend

SETTINGS = AnalysisConfig(bootstrap_resamples=500)
FP32 = SyntheticPrecision("fp32", 1.0, 0.50, 1.00, dtype="float32")
BF16 = SyntheticPrecision("bf16", 1.5, 0.25, 0.60, dtype="bfloat16")
INT8 = SyntheticPrecision("int8", 0.8, 0.14, 0.45)


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory) -> tuple[Path, Path]:
    """box-b is twice as fast as box-a at everything; only box-b ran int8."""
    root = tmp_path_factory.mktemp("machines")
    slow = write_sweep(root / "a", SyntheticSweep(precisions=(FP32, BF16), hardware="box-a", iterations=12))
    fast = write_sweep(
        root / "b",
        SyntheticSweep(
            precisions=(FP32, BF16, INT8),
            hardware="box-b",
            iterations=12,
            base_latency_ms=50.0,
            seed=1,
            quantbench_version="0.0.newer",
        ),
    )
    return slow, fast


def test_one_report_of_two_machines_names_both_and_compares_like_with_like(two_machines, tmp_path):
    files = write_report(list(two_machines), SETTINGS, tmp_path / "out")
    markdown = files.markdown.read_text()
    assert files.markdown == tmp_path / "out" / "report.md"
    assert "box-a" in markdown and "box-b" in markdown and "Baseline hardware: `box-a`" in markdown
    hardware = section(markdown, "Hardware: tokens/s vs box-a")
    assert "| Batch | Precision | box-a tokens/s | box-b tokens/s |" in hardware
    ratios = ratio_rows(hardware)
    assert ratios, hardware
    for precision, _batch, machine, direction, ratio, interval, *_ in ratios:
        assert machine == "box-b"
        if precision == "int8":  # box-a never ran it: nothing to compare with
            assert direction == "not compared" and ratio == "–"
            continue
        low, high = (float(value) for value in interval.split("–"))
        point = float(ratio.rstrip("×"))
        assert point == pytest.approx(2.0, rel=0.05) and 1.8 < low < point < high < 2.2
        assert direction == "faster"
    assert len(ratios) == 3 + 3 + 2  # fp32 and bf16: batch 1, 8, geometric mean; int8: batch 1, 8 uncompared
    assert {row[1] for row in ratios if row[0] == "fp32"} == {"1", "8", "all (geo. mean)"}
    # Each machine is still compared with its own fp32 across precisions.
    assert "| Hardware | Batch | Precision | Direction | × vs fp32 |" in section(
        markdown, "Statistics: tokens/s vs fp32"
    )
    assert "Tokens/s on box-b relative to box-a" in section(markdown, "Findings")
    environment = section(markdown, "Environment")
    assert "0.0.test (box-a); 0.0.newer (box-b)" in environment
    assert "hardware box-a" in environment and "hardware box-b" in environment
    figure = tmp_path / "out" / "figures" / "throughput_by_hardware.png"
    assert figure.is_file() and "figures/throughput_by_hardware.png" in markdown


def test_the_baseline_hardware_is_chosen_on_the_command_line(two_machines, tmp_path, capsys):
    slow, fast = two_machines
    assert (
        cli.main(
            [
                "report",
                str(slow),
                str(fast),
                "--baseline-hardware",
                "box-b",
                "--resamples",
                "200",
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    markdown = (tmp_path / "report.md").read_text()
    ratios = ratio_rows(section(markdown, "Hardware: tokens/s vs box-b"))
    fp32 = [row for row in ratios if row[0] == "fp32" and row[1] == "1"]
    assert fp32[0][2] == "box-a" and float(fp32[0][4].rstrip("×")) == pytest.approx(0.5, rel=0.05)


def test_an_unknown_baseline_hardware_falls_back_with_a_note(two_machines):
    analysis = analyze(list(two_machines), AnalysisConfig(bootstrap_resamples=200, baseline_hardware="box-z"))
    assert analysis.settings.baseline_hardware == "box-a"
    assert any("baseline hardware 'box-z' has no ok result" in note and "box-b" in note for note in analysis.notes)


def test_collect_merges_several_sweeps_into_one_summary(two_machines, tmp_path, capsys):
    slow, fast = two_machines
    assert cli.main(["collect", str(slow), str(fast), "--output", str(tmp_path / "merged")]) == 0
    summary = pl.read_parquet(tmp_path / "merged" / SUMMARY_PARQUET)
    assert summary.height == 4 + 6
    assert summary.get_column(SWEEP_COLUMN).unique().sort().to_list() == sorted(
        str(path.resolve()) for path in two_machines
    )
    assert all(Path(job_dir).is_absolute() and Path(job_dir).is_dir() for job_dir in summary["job_dir"])
    assert set(summary["hardware"]) == {"box-a", "box-b"}
    # The merged summary is itself a sweep the analysis can read, from anywhere.
    assert set(analyze(tmp_path / "merged", SETTINGS, comparisons=False).machines) == {"box-a", "box-b"}


def test_several_sweeps_need_an_output_directory(two_machines, capsys):
    slow, fast = two_machines
    for command in ("collect", "report"):
        assert cli.main([command, str(slow), str(fast)]) == 2
        error = capsys.readouterr().err.strip()
        assert "--output" in error and len(error.splitlines()) == 1, error


def test_a_sweep_given_twice_is_an_error(two_machines, tmp_path, capsys):
    slow, _ = two_machines
    assert cli.main(["report", str(slow), str(slow), "--output", str(tmp_path)]) == 2
    assert "given more than once" in capsys.readouterr().err


def test_recommend_over_two_machines(two_machines, capsys):
    slow, fast = two_machines
    result = recommend(analyze(list(two_machines), comparisons=False), Limits(max_memory_gb=0.65, batch=1))
    assert result.best["configuration"] == "box-b bf16 @ batch 1"
    assert cli.main(["recommend", str(slow), str(fast), "--max-memory-gb", "0.65", "--batch", "1"]) == 0
    assert "**box-b bf16 @ batch 1**" in capsys.readouterr().out


def as_an_older_quantbench_wrote_it(sweep: Path) -> None:
    """Schema version 1: the medians and the price under their old names, no hardware sources, no
    KV-cache size; one job written by a quantbench from the future."""
    for index, file in enumerate(sorted(sweep.glob("*/result.json"))):
        data = json.loads(file.read_text())
        metrics = data["metrics"]
        for old, new in (
            ("ttft_ms", "ttft_p50_ms"),
            ("tpot_ms", "tpot_p50_ms"),
            ("price_per_hour", "price_per_hour_usd"),
        ):
            if new in metrics:
                metrics[old] = metrics.pop(new)
        for gone in ("price_source", "bandwidth_source", "kv_cache_bytes_per_token", "activation_dtype"):
            metrics.pop(gone, None)
        data["environment"]["versions"]["quantbench"] = "0.0.old"
        data["schema_version"] = 99 if index == 0 else 1
        file.write_text(json.dumps(data))
    (sweep / SUMMARY_PARQUET).unlink()


def test_results_of_an_older_quantbench_merge_and_say_what_they_lack(tmp_path):
    current = write_sweep(
        tmp_path / "current", SyntheticSweep(precisions=(FP32, BF16), batches=(1,), hardware="box-a", iterations=8)
    )
    old = write_sweep(
        tmp_path / "old", SyntheticSweep(precisions=(FP32, BF16), batches=(1, 8), hardware="box-b", iterations=8)
    )
    as_an_older_quantbench_wrote_it(old)
    markdown = write_report([current, old], SETTINGS, tmp_path / "out").markdown.read_text()
    jobs = section(markdown, "Jobs")
    assert "6 jobs: 1 failed, 5 ok." in jobs and re.search(r"schema version 99, newer than this quantbench reads", jobs)
    assert "0.0.test (box-a); 0.0.old (box-b)" in section(markdown, "Environment")
    assert "recorded without its source (an older quantbench)" in markdown
    roofline = section(markdown, "Roofline (decode vs memory-bandwidth ceiling)")
    assert "KV cache not counted: the job recorded no kv_cache_bytes_per_token" in roofline
    # The old jobs' medians arrive under the new names, so TPOT (and the decode rate) is there.
    assert "no TPOT measured" not in roofline
