"""Incremental collection: a sweep collected again reads only the result.json files that changed."""

from __future__ import annotations

import json

from quantbench.collect import incremental, sweeps
from quantbench.collect.sweeps import collect_sweep
from quantbench.jobdir import RESULT_FILE, JobResult, write_result


def make_job(sweep, number: int, status: str, precision: str, batch: int, **metrics) -> None:
    identity = {"model": "m", "precision": precision, "backend": precision, "batch": batch}
    write_result(
        sweep / str(number), JobResult(status, None, identity, {"batch": batch}, f"h{number}", metrics=metrics)
    )


def test_a_sweep_collected_again_reads_only_the_results_that_changed(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    for number, precision in enumerate(("fp32", "bf16", "nf4")):
        make_job(sweep, number, "ok", precision, 1, qps=float(number + 1), tokens_per_s=10.0)
    (sweep / "3" / ".hydra").mkdir(parents=True)  # started, never finished: read every time
    (sweep / "3" / ".hydra" / "config.yaml").write_text("model: {name: m}\nprecision: {name: int8}\n")
    read = []
    original = sweeps._read_rows
    monkeypatch.setattr(sweeps, "_read_rows", lambda job_dir: read.append(job_dir.name) or original(job_dir))

    first = collect_sweep(sweep)
    assert sorted(read) == ["0", "1", "2", "3"] and (sweep / incremental.COLLECTED_FILE).is_file()
    read.clear()
    assert collect_sweep(sweep).equals(first)
    assert read == ["3"]

    result = json.loads((sweep / "1" / RESULT_FILE).read_text())
    result["metrics"]["qps"] = 9.0
    (sweep / "1" / RESULT_FILE).write_text(json.dumps(result))
    read.clear()
    again = collect_sweep(sweep)
    assert sorted(read) == ["1", "3"]
    assert again.filter(again["precision"] == "bf16")["qps"].to_list() == [9.0]
    assert str(sweep / "1") in again["job_dir"].to_list()  # rows from the cache name their directory too

    monkeypatch.setattr(incremental, "_code_hash", lambda: "other code")  # a newer collector: all read again
    read.clear()
    collect_sweep(sweep)
    assert sorted(read) == ["0", "1", "2", "3"]


def test_a_damaged_cache_file_costs_one_full_collection(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, "ok", "fp32", 1, qps=1.0)
    (sweep / incremental.COLLECTED_FILE).write_text("{not json")
    assert collect_sweep(sweep)["qps"].to_list() == [1.0]
    assert json.loads((sweep / incremental.COLLECTED_FILE).read_text())["jobs"]["0"]["rows"][0]["qps"] == 1.0


def test_the_terminal_table_of_a_large_sweep_is_cut_and_says_where_the_rest_is(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    for number in range(5):
        make_job(sweep, number, "ok", f"p{number}", 1, qps=float(number))
    monkeypatch.setattr(sweeps, "MAX_TABLE_ROWS", 3)
    sweeps.print_table(collect_sweep(sweep), "t")
    out = capsys.readouterr().out
    assert "p2" in out and "p3" not in out and "... and 2 more rows: all 5 are in summary.csv" in out
