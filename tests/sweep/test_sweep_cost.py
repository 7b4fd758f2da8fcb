"""A sweep says what it will cost: job durations kept in the cache (quantbench.sweep.durations), the
line before the first job and each job's place and time left (quantbench.sweep.cost)."""

from __future__ import annotations

from omegaconf import OmegaConf

from quantbench.sweep import durations
from quantbench.sweep.cost import SweepCost, cost_line, estimate_jobs
from quantbench.sweep.durations import duration_key, estimated_duration_s, record_duration


def test_a_job_key_is_the_same_from_the_sweep_choices_and_from_the_job_itself():
    sweep_choices = {"model": "smollm2-135m", "precision": "fp32", "hardware": "auto", "bench": "default"}
    job_choices = {**sweep_choices, "model": "tiny-llama", "precision": "nf4"}
    overrides = ["model=tiny-llama", "precision=nf4", "batch=8", "bench.max_new_tokens=4"]
    from_sweep = duration_key(sweep_choices, overrides, 1)
    assert from_sweep == duration_key(job_choices, overrides, 8)
    assert from_sweep["batch"] == "8" and from_sweep["precision"] == "nf4" and "bench.max_new_tokens" not in from_sweep
    assert duration_key(sweep_choices, ["precision=nf4", "quality=[ppl,kld]"], 1)["quality"] == "[ppl,kld]"


def test_the_history_gives_the_median_stays_bounded_and_skips_a_damaged_line(tmp_path, monkeypatch):
    key = {"model": "tiny-llama", "precision": "fp32", "batch": "1"}
    assert estimated_duration_s(tmp_path, key) is None
    for seconds in (10.0, 30.0, 20.0):
        record_duration(tmp_path, key, seconds)
    [history] = (tmp_path / durations.DURATIONS_DIR).iterdir()
    history.write_text(history.read_text() + '{"duration_s": \n')  # a crash while appending
    assert estimated_duration_s(tmp_path, key) == 20.0
    assert estimated_duration_s(tmp_path, {**key, "batch": "8"}) is None
    monkeypatch.setattr(durations, "KEPT_RECORDS", 3)
    monkeypatch.setattr(durations, "REWRITE_AFTER_LINES", 6)
    for _ in range(4):
        record_duration(tmp_path, key, 5.0)
    assert len(history.read_text().splitlines()) <= 6
    assert estimated_duration_s(tmp_path, key) == 5.0


def test_the_cost_line_says_the_jobs_the_reused_and_the_estimate_or_unknown(tmp_path):
    sweep = OmegaConf.create(
        {"cache_dir": str(tmp_path), "batch": 1, "hydra": {"runtime": {"choices": {"model": "m", "precision": "fp32"}}}}
    )
    jobs = [["precision=fp32"], ["precision=nf4"], ["precision=int8"]]
    record_duration(tmp_path, duration_key({"model": "m"}, jobs[0], 1), 60.0)
    record_duration(tmp_path, duration_key({"model": "m"}, jobs[1], 1), 30.0)
    assert estimate_jobs(sweep, jobs, [0, 1, 2]) == {0: 60.0, 1: 30.0}

    def line(to_run, reused, estimates, sequential=True):
        return cost_line(SweepCost("d", 3, to_run, reused, estimates, sequential=sequential))

    assert line([0, 1], 1, {0: 60.0, 1: 30.0}) == (
        "sweep of 3 jobs: 1 reused (an ok result of the same config), 2 to run; estimated duration 1.5 min"
    )
    assert line([0, 1, 2], 0, {}) == (
        "sweep of 3 jobs: 3 to run; estimated duration unknown (no earlier run of these jobs in the cache)"
    )
    assert line([0, 2], 1, {0: 60.0}).endswith("; estimated duration at least 60 s (1 of the jobs never ran before)")
    assert line([0], 2, {0: 60.0}, sequential=False).endswith("60 s of job time (jobs side by side take less)")
    assert line([], 3, {}) == "sweep of 3 jobs: 3 reused (an ok result of the same config), 0 to run"


def test_the_time_left_scales_the_estimates_by_what_this_sweep_measured():
    cost = SweepCost("d", 4, [0, 1, 2, 3], 0, {0: 10.0, 1: 10.0, 2: 20.0}, sequential=True)
    assert cost.time_left_s(0) is None  # job 3 has no estimate and nothing was measured yet
    cost.measured[0] = 20.0  # twice as long as estimated
    assert cost.time_left_s(1) == 10.0 * 2 + 20.0 * 2 + 20.0  # job 3: the mean measured so far
    parallel = SweepCost("d", 4, [0, 1, 2, 3], 0, {2: 20.0})
    assert parallel.time_left_s(2) == 20.0 and parallel.time_left_s(3) is None  # per job, on a cluster
    assert SweepCost.from_json("d", cost.to_json()).estimates_s == cost.estimates_s
