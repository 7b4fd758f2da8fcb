"""A resumed sweep launches only the jobs without an ok result of the same config, under their own job
numbers, and never reuses a result whose config changed (quantbench.sweep.plan, the sweeper)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.app import run_app

from quantbench.cli.resume import replay_arguments
from quantbench.jobdir import REUSE_RECORD_FILE, JobResult, write_result
from quantbench.sweep.plan import SweepPlan, plan_sweep

BENCH_OPTION = """defaults:
  - quick
max_new_tokens: {tokens}
"""


def _sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> Path:
    target, code = run_app(args, tmp_path, monkeypatch)
    assert code == 0
    return target


def _log(capsys: pytest.CaptureFixture) -> list[str]:
    """The sweep's log lines (Hydra's console handler writes to stdout), without their time stamps."""
    return [line.split("] ", 1)[-1].split(" - ", 1)[-1] for line in capsys.readouterr().out.splitlines()]


def _launched(lines: list[str]) -> list[int]:
    """The job numbers Hydra's basic launcher logged as it started them ("\t#3 : ...")."""
    return [int(line.split("#")[1].split(" ")[0]) for line in lines if line.startswith("\t#")]


def _cost_line(lines: list[str]) -> str:
    [line] = [line for line in lines if line.startswith("sweep of ")]
    return line


def test_resume_launches_only_missing_and_not_ok_jobs_and_plans_a_changed_config_again(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "conf" / "bench"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(BENCH_OPTION.format(tokens=4))
    args = [
        "-m",
        "model=tiny-llama",
        "bench=mine",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "precision=fp32,fp8",  # fp8 is skipped at once on a CPU: one job measures
        "bench.isolation=none",
        "analysis.report_at_end=false",
    ]
    sweep = _sweep(tmp_path, monkeypatch, args)
    assert _launched(_log(capsys)) == [0, 1]
    assert (sweep / "0" / REUSE_RECORD_FILE).is_file() and not (sweep / "1" / REUSE_RECORD_FILE).exists()
    kept = (sweep / "0" / "result.json").stat().st_mtime_ns

    # Job 1 never finished, job 0 is ok: a resume launches job 1 alone, as job 1, and composes nothing.
    (sweep / "1" / "result.json").unlink()
    without_dir = [item for item in replay_arguments(sweep, []) if not item.startswith("hydra.sweep.dir=")]
    _sweep(tmp_path, monkeypatch, without_dir)
    lines = _log(capsys)
    assert _launched(lines) == [1]
    assert _cost_line(lines).startswith("sweep of 2 jobs: 1 reused (an ok result of the same config), 1 to run")
    assert "composed" not in _cost_line(lines)
    assert "[job 2/2, 1st of 1 to run] model=tiny-llama precision=fp8 batch=1: " in "\n".join(lines)
    assert (sweep / "0" / "result.json").stat().st_mtime_ns == kept
    assert json.loads((sweep / "1" / "result.json").read_text())["status"] == "skipped"

    # A value in a config file changes: every job is planned to measure again (and does: the slow test below).
    (conf / "mine.yaml").write_text(BENCH_OPTION.format(tokens=5))
    _sweep(tmp_path, monkeypatch, [*without_dir, "hydra.sweeper.dry_run=true"])
    lines = _log(capsys)
    assert _launched(lines) == []
    # job 0 is composed to compare (its record is of the old file), job 1 (skipped) runs without
    assert _cost_line(lines).startswith("sweep of 2 jobs: 2 to run (1 job config composed to compare)")


@pytest.mark.slow
def test_a_resumed_sweep_measures_again_a_job_whose_config_file_changed(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "conf" / "bench"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(BENCH_OPTION.format(tokens=4))
    args = ["-m", "model=tiny-llama", "bench=mine", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]
    sweep = _sweep(tmp_path, monkeypatch, [*args, "bench.isolation=none", "analysis.report_at_end=false"])
    (conf / "mine.yaml").write_text(BENCH_OPTION.format(tokens=5))
    _log(capsys)
    resumed = [item for item in replay_arguments(sweep, []) if not item.startswith("hydra.sweep.dir=")]
    _sweep(tmp_path, monkeypatch, resumed)
    assert _launched(_log(capsys)) == [0]
    assert json.loads((sweep / "0" / "result.json").read_text())["config"]["bench"]["max_new_tokens"] == 5


def _ok_result(job_dir: Path) -> None:
    write_result(job_dir, JobResult(status="ok", reason=None, identity={}, config={"batch": 1}, config_hash="h"))


def _record(job_dir: Path, fingerprint: str, overrides: list[str]) -> None:
    from quantbench.sweep.plan import write_reuse_record

    write_reuse_record(job_dir, fingerprint, overrides, "h")


def _sweep_config(sweep_dir: Path, resume: bool = True):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {"resume": resume, "hydra": {"sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"}}}
    )


def test_the_plan_trusts_a_record_only_for_the_same_fingerprint_overrides_and_result(tmp_path):
    jobs = [[f"precision={name}"] for name in ("fp32", "bf16", "nf4", "int8", "fp16", "gptq")]
    for number in range(4):
        _ok_result(tmp_path / str(number))
    _record(tmp_path / "0", "F", jobs[0])  # covered
    _record(tmp_path / "1", "old", jobs[1])  # another config state
    _record(tmp_path / "2", "F", ["precision=nf4", "batch=8"])  # other overrides
    _record(tmp_path / "3", "F", jobs[3])
    rewritten = json.loads((tmp_path / "3" / "result.json").read_text())
    (tmp_path / "3" / "result.json").write_text(json.dumps({**rewritten, "config_hash": "other"}))  # measured since
    _ok_result(tmp_path / "4")
    _record(tmp_path / "4", "F", jobs[4])
    (tmp_path / "4" / "result.json").write_text((tmp_path / "4" / "result.json").read_text() + " ")  # copied: new time
    _ok_result(tmp_path / "5")
    (tmp_path / "5" / "result.json").write_text('{"status": "failed"}')  # failed: runs, without composing
    composed = []

    def compose(overrides, number):
        composed.append(number)
        raise ValueError("not composable here")  # such a job runs, and reports its own error

    plan = plan_sweep(_sweep_config(tmp_path), jobs, "F", compose)
    assert plan == SweepPlan(total=6, to_run=[1, 2, 3, 5], reused=[0, 4], composed=3, fingerprint="F")
    assert composed == [1, 2, 3]
    assert plan_sweep(_sweep_config(tmp_path, resume=False), jobs, "F", compose).to_run == [0, 1, 2, 3, 4, 5]
    # a job's own resume=false is decided on its composed config, not by the record
    assert 0 in plan_sweep(_sweep_config(tmp_path), [[*jobs[0], "resume=false"], *jobs[1:]], "F", compose).to_run


def test_the_sweeper_launches_the_planned_numbers_at_once_or_in_contiguous_runs():
    from hydra_plugins.quantbench_sweeper.quantbench_sweeper import RepeatingSweeper, contiguous_runs, covering_jobs

    assert contiguous_runs([0, 1, 4, 5, 6, 9]) == [[0, 1], [4, 5, 6], [9]]
    grid = [[f"precision={p}", f"batch={b}"] for p in ("fp32", "nf4", "int8") for b in (1, 8)]
    assert covering_jobs(grid) == [["precision=fp32", "batch=1"], ["precision=fp32", "batch=8"], grid[2], grid[4]]

    class Basic:
        def __init__(self):
            self.calls = []

        def launch(self, job_overrides, initial_job_idx):
            self.calls.append((initial_job_idx, [list(job) for job in job_overrides]))
            return []

    class Numbered(Basic):
        def launch_jobs(self, job_overrides, job_numbers):
            self.calls.append((list(job_numbers), [list(job) for job in job_overrides]))
            return []

    batch, numbers = [["a"], ["b"], ["c"]], [1, 2, 5]
    for launcher, expected in (
        (Basic(), [(1, [["a"], ["b"]]), (5, [["c"]])]),
        (Numbered(), [([1, 2, 5], [["a"], ["b"], ["c"]])]),
    ):
        sweeper = RepeatingSweeper()
        sweeper.launcher = launcher
        sweeper._launch(batch, numbers)
        assert launcher.calls == expected


def test_the_fingerprint_reads_configs_by_content_not_by_address(monkeypatch):
    """`python -m quantbench` reads quantbench's configs as file://.../quantbench/conf, the `quantbench`
    command (which `quantbench resume` is) as pkg://quantbench.conf: the same configs, one fingerprint."""
    from hydra._internal.core_plugins.file_config_source import FileConfigSource
    from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
    from omegaconf import OmegaConf

    import quantbench
    from quantbench.sweep import plan

    sweep_config = OmegaConf.create({"hydra": {"job": {"config_name": "config"}, "overrides": {"hydra": []}}})
    conf_dir = Path(quantbench.__file__).parent / "conf"
    prints = []
    for source in (
        FileConfigSource("main", f"file://{conf_dir}"),
        ImportlibResourcesConfigSource("main", "pkg://quantbench.conf"),
    ):
        monkeypatch.setattr(plan, "_config_sources", lambda loader, config, source=source: [source])
        prints.append(plan.composition_fingerprint(None, sweep_config))
    assert prints[0] == prints[1]
    # and the contents do count: another directory of configs is another fingerprint
    monkeypatch.setattr(
        plan, "_config_sources", lambda loader, config: [FileConfigSource("main", f"file://{conf_dir / 'bench'}")]
    )
    assert plan.composition_fingerprint(None, sweep_config) != prints[0]
