"""The report's load profiles: a sweep's levels in the order they ran, an SLO search's answer and
bracket with its probes, an over-saturated level; from summary rows as the collector writes them."""

from __future__ import annotations

import polars as pl

from quantbench.report.document import Document
from quantbench.report.markdown import render_markdown
from quantbench.report.serving_profiles import profile_blocks

JOB = {"model": "smollm2-135m", "precision": "fp32", "n_requests": 16, "ttft_p50_ms": 50.0, "e2e_p95_ms": 400.0}


def level(job: str, index: int, **values) -> dict:
    return {
        **JOB,
        "load_axis": "concurrency" if values.get("concurrency") is not None else "request_rate",
        "job_dir": job,
        "level": index,
        "concurrency": None,
        "request_rate": None,
        "request_throughput_per_s": 1.0,
        "stopped_early": False,
        "stopped_early_reason": None,
        "level_meets_slo": None,
        "level_slo_misses": None,
        "sweep_note": None,
        "slo_search_reason": None,
        **values,
    }


def test_sweeps_in_order_searches_with_their_answer_and_levels_stopped_early():
    rows = pl.DataFrame(
        [  # rows carry the analysis' load axis: a sweep's levels lie on both
            # A sweep, as the analysis sorts rows: by load axis, then load (its rate levels first).
            level("s", 2, profile="sweep", role="rate", request_rate=2.5),
            level(
                "s",
                3,
                profile="sweep",
                role="rate",
                request_rate=4.0,
                stopped_early=True,
                stopped_early_reason="over-saturated: requests in flight rose from 3 to 19",
            ),
            level("s", 0, profile="sweep", role="synchronous", concurrency=1),
            level("s", 1, profile="sweep", role="throughput", concurrency=16),
            level(
                "q",
                0,
                profile="slo-search",
                role="probe",
                concurrency=1,
                level_meets_slo=True,
                slo_search_reason="highest concurrency meeting E2E p95 ≤ 500 ms: 1 users; 2 users misses it",
            ),
            level(
                "q",
                1,
                profile="slo-search",
                role="probe",
                concurrency=2,
                level_meets_slo=False,
                level_slo_misses="E2E p95 900 ms > 500 ms",
                slo_search_reason="highest concurrency meeting E2E p95 ≤ 500 ms: 1 users; 2 users misses it",
            ),
            level("l", 0, profile="levels", role="concurrency", concurrency=4),
        ],
        infer_schema_length=None,
    )
    text = render_markdown(Document("r", profile_blocks(rows, ["load_axis"])))
    sweep = text.split("### Sweep: smollm2-135m fp32", 1)[1].split("###", 1)[0]
    order = [sweep.index(role) for role in ("synchronous", "throughput", "2.5 req/s", "4 req/s")]
    assert order == sorted(order)
    assert "over-saturated: stopped early" in sweep
    search = text.split("### SLO search: smollm2-135m fp32", 1)[1]
    assert "1 users; 2 users misses it." in search
    assert "meets the SLO" in search and "misses the SLO (E2E p95 900 ms > 500 ms)" in search
    assert "fp32 at 4 req/s stopped early after 16 requests: over-saturated: requests in flight rose" in text
    assert text.count("###") == 2  # the plain levels job has no profile block
    assert profile_blocks(rows.drop("profile"), []) == []  # a sweep from before the profiles
