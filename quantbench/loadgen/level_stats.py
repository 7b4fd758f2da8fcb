"""A level's workload as it was sent, from its request records: lengths, the usage check, send lag.

- `input_tokens_p50/p90/p99`, `output_tokens_p50/p90/p99`: the successful requests' token counts
  (as records.py takes them: the server's usage first), numpy's linear interpolation.
- The usage check: over the successful requests whose server reported `prompt_tokens`,
  `input_tokens_requested_mean` (the prompts' own counts, made with the model's tokenizer and chat
  template), `input_tokens_usage_mean` (the server's) and `input_tokens_usage_error_pct`, the
  relative difference of their sums in percent (signed: positive when the server counted more), with
  `input_tokens_usage_max_error_pct`, the largest per request. Null when no request had a usage
  report, and `input_tokens_usage_note` says why; it also says when only some requests had one.
- `output_tokens_requested_mean`: the max_tokens asked (per request for synthetic workloads).
- Open-loop levels: `send_lag_p50_ms`, `send_lag_p99_ms`, `send_lag_max_ms`, how late requests
  went out after they were due (the load generator's own error; every request sent, failed ones
  too). Null in a closed loop, where nothing is scheduled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from quantbench.loadgen.records import RequestRecord

LENGTH_PERCENTILES = (50, 90, 99)
SEND_LAG_PERCENTILES = (50, 99)


def _percentiles(name: str, values: Sequence[float], qs: Sequence[int], unit: str = "") -> dict[str, float | None]:
    array = np.asarray(values, dtype=float)
    return {f"{name}_p{q}{unit}": float(np.percentile(array, q)) if len(array) else None for q in qs}


def usage_check(records: Sequence[RequestRecord]) -> dict[str, Any]:
    asked = [r for r in records if r.ok and r.input_tokens_requested is not None]
    paired = [r for r in asked if r.input_tokens_usage is not None]
    columns: dict[str, Any] = {
        "input_tokens_requested_mean": None,
        "input_tokens_usage_mean": None,
        "input_tokens_usage_error_pct": None,
        "input_tokens_usage_max_error_pct": None,
        "input_tokens_usage_note": None,
    }
    if not asked:
        columns["input_tokens_usage_note"] = "no successful request with a known input count"
        return columns
    if not paired:
        columns["input_tokens_requested_mean"] = float(np.mean([r.input_tokens_requested for r in asked]))
        columns["input_tokens_usage_note"] = "the server reported no usage (prompt_tokens): nothing to check against"
        return columns
    requested = np.array([r.input_tokens_requested for r in paired], dtype=float)
    reported = np.array([r.input_tokens_usage for r in paired], dtype=float)
    columns |= {
        "input_tokens_requested_mean": float(requested.mean()),
        "input_tokens_usage_mean": float(reported.mean()),
        "input_tokens_usage_error_pct": float((reported.sum() - requested.sum()) / requested.sum() * 100),
        "input_tokens_usage_max_error_pct": float(np.max(np.abs(reported - requested) / requested) * 100),
    }
    if len(paired) < len(asked):
        columns["input_tokens_usage_note"] = f"{len(asked) - len(paired)} of {len(asked)} requests without usage"
    return columns


def workload_columns(records: Sequence[RequestRecord]) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    lags = [r.send_lag_ms for r in records if r.send_lag_ms is not None]
    asked = [r.output_tokens_requested for r in ok if r.output_tokens_requested is not None]
    return {
        **_percentiles("input_tokens", [r.input_tokens for r in ok if r.input_tokens is not None], LENGTH_PERCENTILES),
        **_percentiles(
            "output_tokens", [r.output_tokens for r in ok if r.output_tokens is not None], LENGTH_PERCENTILES
        ),
        "output_tokens_requested_mean": float(np.mean(asked)) if asked else None,
        **usage_check(records),
        **_percentiles("send_lag", lags, SEND_LAG_PERCENTILES, "_ms"),
        "send_lag_max_ms": float(max(lags)) if lags else None,
    }
