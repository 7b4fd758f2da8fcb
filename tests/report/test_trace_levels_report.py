"""A replayed trace's level (serve.trace) has neither a concurrency nor a request rate: the analysis puts
it on its own axis, `trace`, at the replay's speed, compared only with other replays, and the report
and its figures take it beside closed-loop levels."""

from __future__ import annotations

from test_serving_report import write_mixed_sweep

from quantbench.analysis.analyze import analyze
from quantbench.collect.sweeps import write_summary
from quantbench.config.schema import AnalysisConfig
from quantbench.jobdir import read_result, write_result
from quantbench.report.document import Document
from quantbench.report.markdown import render_markdown
from quantbench.report.serving import serving_blocks


def test_a_trace_level_is_on_its_own_axis_at_the_replay_speed(tmp_path):
    sweep = write_mixed_sweep(tmp_path / "sweep")
    job = sweep / "1"  # nf4: its levels become one replay of a trace at twice its speed
    result = read_result(job)
    first = result.metrics["levels"][0]
    first |= {"concurrency": None, "request_rate": None, "trace": "trace.jsonl", "input_tokens_requested_mean": 64.0}
    first |= {"input_tokens_p50": 64.0, "input_tokens_usage_error_pct": 0.0, "send_lag_p99_ms": 1.5}
    result.metrics["levels"] = [first]
    result.metrics["trace_speed"] = 2.0
    write_result(job, result)
    write_summary(sweep)

    serving = analyze(sweep, AnalysisConfig(bootstrap_resamples=50), comparisons=False).serving
    traced = serving.rows.filter(serving.rows["load_axis"] == "trace")
    assert traced.height == 1 and traced["precision"][0] == "nf4" and traced["load"][0] == 2.0
    assert set(serving.rows.filter(serving.rows["precision"] == "fp32")["load_axis"]) == {"concurrency"}
    document = Document("serving")
    document.add(*serving_blocks(analyze(sweep, AnalysisConfig(bootstrap_resamples=50), comparisons=False)))
    text = render_markdown(document)
    assert "2 × trace speed" in text
    workload = text.split("### Workload of each level")[1].split("###")[0]
    assert "| nf4" in workload and "1.50" in workload
