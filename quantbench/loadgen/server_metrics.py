"""A server's Prometheus `/metrics`, scraped before, during and after each load level.

Once the server answers (or engine.url is reached), one GET of `<server>/metrics` decides: a server
that answers 200 with Prometheus text is scraped for the rest of the job; any other answer (no
such route: `transformers serve` answers 404; llama-server started without `--metrics` answers
501) or no answer is recorded as the reason there are no server-side columns, and nothing more is
sent. Scrapes, each a plain GET with a SCRAPE_TIMEOUT_S limit:

    level start      when a level begins (before its warm-up): also the previous level's end
    measured start   after the warm-up, before the first measured request (the load waits for it)
    interval         every serve.metrics_interval_s from a background thread, whatever the load
    end              after the last level

The background thread only fetches: the text is parsed (prometheus_client's parser) between levels
and at the end, so the scraper takes the GIL from the load's event loop for no more than a socket
read. A scrape that fails is recorded with its error and the job goes on. Every sample goes to
server_metrics.parquet (quantbench.jobdir.SERVER_METRICS_FILE), one row per sample: the scrape, its
time, level and trigger, the metric, its labels (JSON), its value; a failed scrape is one row with
its error. What the samples mean per engine: quantbench.loadgen.server_metric_maps; the per-level
columns: quantbench.loadgen.server_metric_levels.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from quantbench.loadgen.load import Level, LevelRun

METRICS_PATH = "/metrics"
SCRAPE_TIMEOUT_S = 2.0
ERROR_CHARS = 200
PROBE, LEVEL_START, MEASURED_START, INTERVAL, END = "probe", "level start", "measured start", "interval", "end"
OFF_REASON = "serve.metrics_interval_s is null: the server's /metrics was not scraped"
# Samples left out before parsing: histogram buckets (vLLM's latency histograms are two thirds of its
# 376 samples and of the parse time; quantbench computes its own percentiles from its requests, and
# each histogram's _sum and _count stay) and <counter>_created (when the series was created, a Unix
# time, not a measurement).
LEFT_OUT = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*_(?:bucket|created)(?:\{[^\n]*)?[ \t][^\n]*\n?", re.MULTILINE)


@dataclass
class Scrape:
    index: int
    perf_counter_s: float  # the middle of the GET
    scrape_ms: float  # how long the GET took
    level: int | None  # the level being driven (None before the first)
    trigger: str
    text: str | None = None  # the body until it is parsed
    error: str | None = None
    samples: list[tuple[str, str, float]] | None = None  # (metric, labels as JSON, value)


SAMPLES_SCHEMA = {
    "scrape": pl.Int64,
    "t_s": pl.Float64,  # seconds after the job's first scrape
    "perf_counter_s": pl.Float64,
    "scrape_ms": pl.Float64,
    "level": pl.Int64,
    "trigger": pl.Utf8,
    "metric": pl.Utf8,
    "labels": pl.Utf8,
    "value": pl.Float64,
    "error": pl.Utf8,
}


def samples_frame(scrapes: list[Scrape]) -> pl.DataFrame:
    """One row per sample of every scrape; a failed scrape is one row with its error."""
    columns: dict[str, list[Any]] = {name: [] for name in SAMPLES_SCHEMA}
    origin = scrapes[0].perf_counter_s if scrapes else 0.0
    for scrape in scrapes:
        rows = scrape.samples if scrape.error is None and scrape.samples is not None else [(None, None, None)]
        shared = {
            "scrape": scrape.index,
            "t_s": scrape.perf_counter_s - origin,
            "perf_counter_s": scrape.perf_counter_s,
            "scrape_ms": scrape.scrape_ms,
            "level": scrape.level,
            "trigger": scrape.trigger,
            "error": scrape.error,
        }
        for name, value in shared.items():
            columns[name].extend([value] * len(rows))
        for name, values in zip(("metric", "labels", "value"), zip(*rows)):
            columns[name].extend(values)
    return pl.DataFrame(columns, schema=SAMPLES_SCHEMA)


def fetch(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """(HTTP status, body); (None, what went wrong) when there was no answer. No proxies: as the
    load's own client, the scrape goes straight to the server."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")
    except urllib.error.URLError as error:
        return None, f"{type(error.reason).__name__}: {error.reason}"
    except (OSError, TimeoutError) as error:
        return None, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def parse_samples(text: str) -> list[tuple[str, str, float]]:
    """(metric, labels as sorted JSON, value) of every sample of a Prometheus text body but those
    LEFT_OUT; ValueError for text that is not Prometheus' format."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, json.dumps(sample.labels, sort_keys=True) if sample.labels else "", float(sample.value))
        for family in text_string_to_metric_families(LEFT_OUT.sub("", text))
        for sample in family.samples
    ]


def check_interval(serve: Any) -> float | None:
    """serve.metrics_interval_s, or JobSkipped for one that is not a positive number of seconds."""
    value = serve.get("metrics_interval_s")
    if value is None:
        return None
    if float(value) <= 0:
        raise JobSkipped(
            f"serve.metrics_interval_s must be a positive number of seconds (null: do not scrape), got {value}"
        )
    return float(value)


class ServerMetrics:
    """`start(base_url, headers)` once the server answers, `on_level` and `on_measure` given to the
    load (quantbench.loadgen.driver.run_levels), `stop()` after the last level; then `write`,
    `level_columns`, `summary`."""

    def __init__(self, interval_s: float | None):
        self.interval_s = interval_s
        self.url: str | None = None
        self.reason: str | None = OFF_REASON if interval_s is None else None
        self.scrapes: list[Scrape] = []
        self.level: int | None = None
        self._headers: dict[str, str] = {}
        self._lock = threading.Lock()  # one GET at a time: the thread's and the load's hooks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0

    @property
    def active(self) -> bool:
        return self.url is not None and self.reason is None

    def scrape(self, trigger: str) -> Scrape | None:
        """One GET, recorded; None when the job scrapes nothing."""
        if self.url is None or (self.reason is not None and trigger != PROBE):
            return None
        with self._lock:
            began = time.perf_counter()
            status, body = fetch(self.url, self._headers, SCRAPE_TIMEOUT_S)
            ended = time.perf_counter()
            scrape = Scrape(len(self.scrapes), (began + ended) / 2, (ended - began) * 1e3, self.level, trigger)
            if status == 200:
                scrape.text = body
            elif status is None:
                scrape.error = f"no answer from GET {self.url}: {body}"[:ERROR_CHARS]
            else:
                first_line = " ".join(body.split())[:ERROR_CHARS]
                scrape.error = f"GET {self.url} answered HTTP {status}: {first_line}"
            self.scrapes.append(scrape)
        return scrape

    def _parse(self, scrape: Scrape) -> None:
        if scrape.text is None:
            return
        try:
            scrape.samples = parse_samples(scrape.text)
        except ValueError as error:
            scrape.error = f"GET {self.url} is not Prometheus text ({str(error)[:ERROR_CHARS]})"
        scrape.text = None

    def parse_pending(self) -> None:
        with self._lock:
            pending = [scrape for scrape in self.scrapes if scrape.text is not None]
        for scrape in pending:
            self._parse(scrape)

    def attach(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        """The server to scrape (where /v1 lives); the probe decides whether it has /metrics."""
        if self.interval_s is None:
            return
        self.url = base_url.rstrip("/") + METRICS_PATH
        self._headers = dict(headers or {})  # an endpoint's API key: never recorded
        probe = self.scrape(PROBE)
        assert probe is not None
        self._parse(probe)
        if probe.error is not None:
            self.reason = probe.error

    def _run(self) -> None:
        """A scrape on every tick of the interval; a tick missed (a slow GET) is skipped, not caught up."""
        assert self.interval_s is not None
        while True:
            elapsed = time.perf_counter() - self._started_at
            next_tick = (int(elapsed / self.interval_s) + 1) * self.interval_s
            if self._stop.wait(next_tick - elapsed):
                return
            self.scrape(INTERVAL)

    def start(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        """Probe the server, then scrape it every interval from a background thread until `stop`."""
        self.attach(base_url, headers)
        if not self.active:
            return
        self._started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="quantbench-server-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and scrape once more (the last level's end); nothing when not started.
        Called after the last level, while the server still runs, and again on every way out of
        the job (quantbench.scenarios.serve), where it does nothing the second time."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.scrape(END)
        self.parse_pending()

    def on_level(self, level: Level) -> None:
        """A level begins: parse what the last one scraped (no load runs now), then scrape."""
        self.parse_pending()
        self.level = level.index
        self.scrape(LEVEL_START)

    def on_measure(self, level: Level) -> None:
        """The warm-up is over and the measured requests are about to go: the counters' start."""
        self.scrape(MEASURED_START)

    def frame(self) -> pl.DataFrame:
        self.parse_pending()
        return samples_frame(self.scrapes)

    def write(self, job_dir: Path) -> None:
        """server_metrics.parquet, once the scraping has stopped."""
        from quantbench.atomic import write_parquet_atomic
        from quantbench.jobdir import SERVER_METRICS_FILE

        self.stop()
        if self.scrapes:
            write_parquet_atomic(Path(job_dir) / SERVER_METRICS_FILE, self.frame())

    def level_columns(self, runs: list[LevelRun]) -> list[dict[str, Any]]:
        """One dict of server_* columns per level run (nulls and the reason when there are none)."""
        from quantbench.loadgen.server_metric_levels import level_columns, quantity_series

        if not self.active:
            return [level_columns(None, run, self.interval_s, self.reason) for run in runs]
        series = quantity_series(self.frame())
        return [level_columns(series, run, self.interval_s, None) for run in runs]

    def summary(self) -> dict[str, Any]:
        """The job's facts: where the metrics came from (or why there are none), how many scrapes,
        and what one cost."""
        from quantbench.loadgen.server_metric_levels import job_facts

        return job_facts(self.frame() if self.scrapes else None, self.url, self.interval_s, self.reason)
