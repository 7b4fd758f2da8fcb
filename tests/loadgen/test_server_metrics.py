"""Server-side metrics: recorded /metrics payloads of llama-server and vLLM (tests/fixtures/metrics)
turned into a level's server_* columns (deltas, max/mean, prefix-cache hit rate, counter resets),
and the scraper against a loopback server: one without /metrics, one that stops answering."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest
from support import FIXTURES

from quantbench.errors import JobSkipped
from quantbench.loadgen.load import Level, LevelRun
from quantbench.loadgen.server_metric_levels import increase, job_facts, level_columns, quantity_series
from quantbench.loadgen.server_metrics import (
    INTERVAL,
    LEVEL_START,
    MEASURED_START,
    PROBE,
    Scrape,
    ServerMetrics,
    check_interval,
    parse_samples,
    samples_frame,
)

METRICS = FIXTURES / "metrics"
# What the recorded payloads hold (tests/fixtures/metrics/, README.md there): four requests running at
# the `during` scrape; from `before` to `after`, llama-server computed 361 prompt tokens and reused
# 169 from a slot's cache (two prompts share a prefix) and generated 804 in 205 decodes.
LLAMA_DURING_RUNNING, LLAMA_DURING_DEFERRED = 4, 0
LLAMA_PROMPT_COMPUTED, LLAMA_PROMPT_CACHED, LLAMA_PREDICTED = 361, 169, 804
LLAMA_BUSY_SLOTS_PER_DECODE = 3.92195  # 804 tokens over 205 decodes, as llama-server rounds it
# vLLM 0.32 (prefix caching on): 1389 prompt tokens queried, 768 of them hits, 804 generated.
VLLM_DURING_RUNNING, VLLM_DURING_WAITING, VLLM_DURING_KV = 4, 0, 0.0008545965083628371
VLLM_PROMPT_TOKENS = VLLM_QUERIES = 1389
VLLM_HITS, VLLM_GENERATION_TOKENS = 768, 804


def recorded(name: str) -> str:
    return (METRICS / f"{name}.txt").read_text()


def scrape(index: int, at_s: float, text: str | None, error: str | None = None, trigger: str = INTERVAL) -> Scrape:
    return Scrape(index, at_s, 1.0, 0, trigger, error=error, samples=None if text is None else parse_samples(text))


def level_run(started_at: float, finished_at: float, index: int = 0) -> LevelRun:
    return LevelRun(Level(index, concurrency=4), started_at, finished_at)


def columns_of(scrapes: list[Scrape], run: LevelRun, interval_s: float = 0.5) -> dict:
    return level_columns(quantity_series(samples_frame(scrapes)), run, interval_s, None)


def llama(values: dict[str, float]) -> str:
    """llama-server's text (server-task.cpp's shape) with these values."""
    lines = []
    for name, value in values.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        lines += [f"# HELP llamacpp:{name} x", f"# TYPE llamacpp:{name} {kind}", f"llamacpp:{name} {value:g}"]
    return "\n".join(lines) + "\n"


def test_llama_server_payloads_give_the_levels_deltas_gauges_and_prefix_hits():
    scrapes = [
        scrape(0, 0.0, recorded("llama_server_before"), trigger=MEASURED_START),
        scrape(1, 1.0, recorded("llama_server_during")),
        scrape(2, 2.0, recorded("llama_server_after"), trigger=LEVEL_START),
    ]
    columns = columns_of(scrapes, level_run(0.01, 1.99))
    assert columns["server_metrics_note"] is None and columns["server_metrics_scrapes"] == 1
    assert columns["server_requests_running_max"] == columns["server_requests_running_mean"] == LLAMA_DURING_RUNNING
    assert columns["server_requests_waiting_max"] == LLAMA_DURING_DEFERRED
    # This llama-server build reports neither KV-cache usage nor preemptions.
    assert columns["server_kv_cache_usage_max"] is None and columns["server_preemptions"] is None
    assert columns["server_prompt_tokens"] == LLAMA_PROMPT_COMPUTED + LLAMA_PROMPT_CACHED
    assert columns["server_prefix_cache_hit_tokens"] == LLAMA_PROMPT_CACHED
    assert columns["server_prefix_cache_hit_rate"] == pytest.approx(
        LLAMA_PROMPT_CACHED / (LLAMA_PROMPT_COMPUTED + LLAMA_PROMPT_CACHED)
    )
    assert columns["server_generation_tokens"] == LLAMA_PREDICTED
    assert columns["server_busy_slots_per_decode"] == pytest.approx(LLAMA_BUSY_SLOTS_PER_DECODE)


def test_vllm_payloads_give_the_levels_deltas_gauges_and_prefix_hits():
    scrapes = [
        scrape(0, 0.0, recorded("vllm_before"), trigger=MEASURED_START),
        scrape(1, 1.0, recorded("vllm_during")),
        scrape(2, 2.0, recorded("vllm_after"), trigger=LEVEL_START),
    ]
    columns = columns_of(scrapes, level_run(0.01, 1.99))
    assert columns["server_metrics_note"] is None
    assert columns["server_requests_running_max"] == VLLM_DURING_RUNNING
    assert columns["server_requests_waiting_max"] == VLLM_DURING_WAITING
    assert columns["server_kv_cache_usage_max"] == pytest.approx(VLLM_DURING_KV)
    assert columns["server_preemptions"] == 0
    assert columns["server_prompt_tokens"] == VLLM_PROMPT_TOKENS
    assert columns["server_generation_tokens"] == VLLM_GENERATION_TOKENS
    assert columns["server_prefix_cache_queried_tokens"] == VLLM_QUERIES
    assert columns["server_prefix_cache_hit_tokens"] == VLLM_HITS
    assert columns["server_prefix_cache_hit_rate"] == pytest.approx(VLLM_HITS / VLLM_QUERIES)
    assert columns["server_busy_slots_per_decode"] is None  # llama-server's alone
    facts = job_facts(samples_frame(scrapes), "http://127.0.0.1:1/metrics", 0.5, None)
    assert facts["server_metrics_source"] == "GET http://127.0.0.1:1/metrics, vLLM names (vllm:*)"
    assert facts["server_metrics_not_reported"] == "decode_calls, busy_slot_decodes"


def test_gauges_take_max_and_mean_inside_the_window_only():
    texts = [
        llama({"requests_processing": value, "prompt_tokens_total": 10 * i}) for i, value in enumerate((9, 1, 3, 9))
    ]
    scrapes = [scrape(index, float(index), text) for index, text in enumerate(texts)]
    columns = columns_of(scrapes, level_run(0.5, 2.5))  # only the scrapes at 1 s and 2 s are inside
    assert columns["server_requests_running_max"] == 3 and columns["server_requests_running_mean"] == 2
    assert columns["server_metrics_scrapes"] == 2
    # Counters from the last scrape before the start (0 s) to the first after the end (3 s).
    assert columns["server_prompt_tokens"] == 30


def test_a_counter_that_goes_down_counts_from_its_new_value():
    assert increase([100, 150, 20, 50]) == (50 + 20 + 30, 1)
    texts = [llama({"prompt_tokens_total": value, "tokens_predicted_total": value}) for value in (100, 150, 20, 50)]
    columns = columns_of([scrape(i, float(i), text) for i, text in enumerate(texts)], level_run(0.0, 3.0))
    assert columns["server_prompt_tokens"] == 100 and columns["server_generation_tokens"] == 100
    assert "went down" in columns["server_metrics_note"]


def test_a_scrape_that_failed_mid_level_keeps_the_level_and_says_so():
    texts = [llama({"requests_processing": 2, "prompt_tokens_total": value}) for value in (0, 40)]
    scrapes = [
        scrape(0, 0.0, texts[0], trigger=MEASURED_START),
        scrape(1, 1.0, None, error="no answer from GET http://127.0.0.1:1/metrics: TimeoutError"),
        scrape(2, 2.0, texts[1], trigger=LEVEL_START),
    ]
    columns = columns_of(scrapes, level_run(0.01, 1.99))
    assert columns["server_prompt_tokens"] == 40  # the counters still bracket the level
    assert columns["server_requests_running_max"] is None  # the one scrape inside failed
    assert columns["server_metrics_failed_scrapes"] == 1
    note = columns["server_metrics_note"]
    assert "1 of 3 scrapes failed (first: no answer from GET" in note and "its gauges are null" in note


def test_metrics_of_an_unknown_server_are_kept_but_give_no_columns():
    text = "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n"
    scrapes = [scrape(0, 0.0, text), scrape(1, 1.0, text)]
    columns = columns_of(scrapes, level_run(0.0, 1.0))
    assert columns["server_requests_running_max"] is None and "match no engine map" in columns["server_metrics_note"]
    facts = job_facts(samples_frame(scrapes), "http://h/metrics", 0.5, None)
    assert facts["server_metrics_source"] is None and "match no engine map" in facts["server_metrics_reason"]
    assert samples_frame(scrapes).get_column("metric").to_list() == ["tgi_queue_size"] * 2


def test_a_bad_interval_is_a_one_line_skip():
    with pytest.raises(JobSkipped, match="serve.metrics_interval_s must be a positive number of seconds"):
        check_interval({"metrics_interval_s": 0})
    assert check_interval({"metrics_interval_s": None}) is None


class Answers:
    """What the loopback server answers at /metrics: (status, body), changed by the test."""

    def __init__(self, status: int, body: str):
        self.status, self.body = status, body


@pytest.fixture
def loopback():
    answers = Answers(404, '{"detail":"Not Found"}')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # the name http.server calls
            body = answers.body.encode()
            self.send_response(answers.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers, server
    server.shutdown()
    server.server_close()


def test_a_server_without_metrics_gives_null_columns_with_the_reason(loopback, tmp_path):
    url, _, _ = loopback
    metrics = ServerMetrics(0.05)
    metrics.start(url)
    metrics.on_level(Level(0, concurrency=1))
    metrics.stop()
    run = level_run(0.0, 1.0)
    [columns] = metrics.level_columns([run])
    assert columns["server_metrics_note"] == f'GET {url}/metrics answered HTTP 404: {{"detail":"Not Found"}}'
    assert columns["server_requests_running_max"] is None and columns["server_metrics_scrapes"] == 0
    assert [scrape.trigger for scrape in metrics.scrapes] == [PROBE]  # nothing more is sent after the refusal
    summary = metrics.summary()
    assert summary["server_metrics_source"] is None and "HTTP 404" in summary["server_metrics_reason"]


def test_llama_server_started_without_the_flag_is_the_reason(loopback):
    url, answers, _ = loopback
    status_line, _, body = recorded("llama_server_no_metrics_flag").partition("\n")
    answers.status, answers.body = int(status_line.split()[1]), body.strip()
    metrics = ServerMetrics(0.05)
    metrics.start(url)
    metrics.stop()
    assert "answered HTTP 501" in metrics.reason and "Start it with `--metrics`" in metrics.reason


def test_no_scraping_when_the_interval_is_null(loopback):
    url, _, _ = loopback
    metrics = ServerMetrics(None)
    metrics.start(url)
    metrics.on_level(Level(0, concurrency=1))
    metrics.stop()
    assert metrics.scrapes == [] and "serve.metrics_interval_s is null" in metrics.summary()["server_metrics_reason"]


def test_the_scraper_samples_each_trigger_and_writes_every_sample(loopback, tmp_path):
    import time

    from quantbench.jobdir import SERVER_METRICS_FILE

    url, answers, server = loopback
    answers.status, answers.body = 200, recorded("llama_server_during")
    metrics = ServerMetrics(0.02)
    metrics.start(url)
    metrics.on_level(Level(0, concurrency=4))
    metrics.on_measure(Level(0, concurrency=4))
    started = time.perf_counter()
    time.sleep(0.15)
    finished = time.perf_counter()
    metrics.on_level(Level(1, concurrency=8))
    server.shutdown()  # the server goes away mid-level: its scrapes fail, the job goes on
    server.server_close()
    time.sleep(0.06)
    metrics.write(tmp_path)
    frame = pl.read_parquet(tmp_path / SERVER_METRICS_FILE)
    assert {"probe", "level start", "measured start", "interval", "end"} <= set(frame.get_column("trigger"))
    assert frame.filter(pl.col("metric") == "llamacpp:requests_processing").height >= 5
    failed = frame.filter(pl.col("error").is_not_null())
    assert failed.height >= 1 and failed.get_column("metric").null_count() == failed.height
    first, second = metrics.level_columns(
        [level_run(started, finished, 0), level_run(finished + 0.001, finished + 0.05, 1)]
    )
    assert first["server_metrics_scrapes"] >= 3 and first["server_requests_running_max"] == LLAMA_DURING_RUNNING
    assert first["server_prompt_tokens"] == 0  # the same payload each time: no counter moved
    assert second["server_metrics_failed_scrapes"] >= 1 and "failed" in second["server_metrics_note"]
    summary = metrics.summary()
    assert summary["server_metrics_source"] == f"GET {url}/metrics, llama-server names (llamacpp:*)"
    assert summary["server_metrics_failed_scrapes_in_job"] >= 1 and summary["server_metrics_scrape_ms_p50"] > 0
