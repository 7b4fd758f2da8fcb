"""Load time means one thing: the job that materialises a model and the next job of the same model
and precision report comparable load_s, with materialisation, start-up and warm-up timed apart."""

from __future__ import annotations

import polars as pl
import pytest


# ~25 s on 2 cores: two real jobs, one of them materialising the model.
@pytest.mark.slow
def test_the_job_that_materialises_a_model_loads_it_like_the_next(tmp_path, run_quantbench):
    empty_cache = tmp_path / "empty-cache"
    sweep = run_quantbench(
        [
            "-m",
            "model=tiny-llama",
            "bench=quick",
            "precision=fp32",
            "bench.repeats=2",
            "bench.isolation=process",  # each job in a fresh process, as a real sweep runs it
            "bench.warmup_iterations=1",
            "bench.min_iterations=1",
            "bench.max_iterations=1",
            "bench.max_new_tokens=2",
            f"cache_dir={empty_cache}",
            "analysis.report_at_end=false",
        ],
        tmp_path,
    )
    jobs = pl.read_parquet(sweep / "jobs.parquet")
    assert jobs["status"].to_list() == ["ok", "ok"], jobs["reason"].to_list()
    first, second = jobs.iter_rows(named=True)
    assert first["materialise_s"] > 0 and second["materialise_s"] == 0.0  # built once, by the first job
    load = sorted([first["load_s"], second["load_s"]])
    assert load[1] <= 2 * load[0] or load[1] - load[0] <= 0.5, load
    for job in (first, second):
        assert job["startup_s"] > 0 and job["warmup_s"] > 0 and job["measured_s"] > 0
