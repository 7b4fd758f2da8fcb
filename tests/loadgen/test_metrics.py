"""Serving statistics from request records: vLLM's definitions, intervals, goodput, failures."""

from __future__ import annotations

import numpy as np
import pytest

from quantbench.loadgen.metrics import level_summary, meets_slo
from quantbench.loadgen.records import RequestRecord, records_frame


def record(request: int, ttft_ms=100.0, chunk_gap_ms=10.0, tokens=5, ok=True, error=None) -> RequestRecord:
    chunks = [ttft_ms + i * chunk_gap_ms for i in range(tokens)] if ok else []
    return RequestRecord(
        level=0,
        concurrency=2,
        request_rate=None,
        request=request,
        prompt_id=f"p{request}",
        ok=ok,
        error=error,
        status_code=200 if ok else 500,
        sent_s=request * 0.1,
        ttft_ms=ttft_ms if ok else None,
        e2e_ms=chunks[-1] if ok else None,
        chunk_ms=chunks,
        input_tokens=7,
        output_tokens=tokens if ok else 0,
        tokens_from="usage",
        finish_reason="length" if ok else None,
    )


def test_tpot_and_itl_follow_vllm():
    one = record(0, ttft_ms=100.0, chunk_gap_ms=10.0, tokens=5)
    assert one.e2e_ms == 140.0
    assert one.tpot_ms == pytest.approx((140.0 - 100.0) / 4)
    assert one.itl_ms == [10.0, 10.0, 10.0, 10.0]
    assert record(1, tokens=1).tpot_ms is None  # no decode step after the first token


def test_level_summary_counts_failures_and_pools_itl():
    records = [record(i, ttft_ms=100.0 + i, chunk_gap_ms=10.0 + i) for i in range(4)]
    records.append(record(4, ok=False, error="HTTP 500: boom"))
    summary = level_summary(records, duration_s=2.0, slo={}, seed=0)
    assert summary["n_requests"] == 5
    assert summary["n_failed_requests"] == 1
    assert summary["request_throughput_per_s"] == pytest.approx(4 / 2.0)
    assert summary["output_tokens_per_s"] == pytest.approx(20 / 2.0)
    assert summary["n_itl_samples"] == 16  # 4 gaps from each successful request, pooled
    assert summary["itl_p50_ms"] == pytest.approx(np.percentile([10, 11, 12, 13] * 4, 50))
    assert summary["ttft_p50_ms"] == pytest.approx(101.5)
    assert summary["e2e_p98_ms"] is not None
    assert summary["p99_few_requests"] is True
    assert summary["goodput_per_s"] is None and summary["slo_attainment"] is None  # no objective set


def test_intervals_bracket_their_estimates():
    rng = np.random.default_rng(1)
    records = [record(i, ttft_ms=float(value)) for i, value in enumerate(rng.gamma(4.0, 50.0, 200))]
    summary = level_summary(records, duration_s=10.0, slo={}, seed=3)
    for name in ("ttft_p50_ms", "ttft_p95_ms", "e2e_p99_ms", "itl_p95_ms"):
        assert summary[f"{name}_ci_low"] <= summary[name] <= summary[f"{name}_ci_high"], name
    assert summary["ttft_p50_ms_ci_low"] < summary["ttft_p50_ms_ci_high"]
    assert summary["p99_few_requests"] is False
    assert level_summary(records, 10.0, {}, seed=3) == summary  # seeded: the same numbers again


def test_goodput_counts_only_requests_meeting_every_objective():
    records = [record(0, ttft_ms=50.0), record(1, ttft_ms=500.0), record(2, ok=False, error="timed out")]
    summary = level_summary(records, duration_s=4.0, slo={"ttft_ms": 200.0, "tpot_ms": None, "e2e_ms": None}, seed=0)
    assert summary["goodput_per_s"] == pytest.approx(1 / 4.0)
    assert summary["slo_attainment"] == pytest.approx(1 / 3)
    assert not meets_slo(records[2], {"ttft_ms": 1e9})  # a failed request never meets an SLO
    assert not meets_slo(records[0], {"e2e_ms": 10.0})


def test_one_request_has_estimates_but_no_interval():
    summary = level_summary([record(0)], duration_s=1.0, slo={}, seed=0)
    assert summary["ttft_p50_ms"] == 100.0
    assert summary["ttft_p50_ms_ci_low"] is None


def test_every_request_failed_leaves_latencies_empty():
    summary = level_summary([record(0, ok=False, error="x")], duration_s=1.0, slo={"e2e_ms": 10.0}, seed=0)
    assert summary["ttft_p50_ms"] is None and summary["n_ttft_samples"] == 0
    assert summary["slo_attainment"] == 0.0


def test_records_frame_keeps_every_request():
    frame = records_frame([record(0), record(1, ok=False, error="HTTP 500: boom")])
    assert frame.height == 2
    assert frame["ok"].to_list() == [True, False]
    assert frame["itl_ms"][0].to_list() == [10.0] * 4
