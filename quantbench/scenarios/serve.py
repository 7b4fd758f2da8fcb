"""scenario=serve: one job = one server (or endpoint), load levels, a row per level.

    resolve the engine -> check it can serve the precision here -> read the dataset -> the weights
    (materialised, or the cached quantized checkpoint) -> start the server on a free loopback port
    and wait for its health endpoint (or probe engine.url) -> per level: warm-up, then the measured
    requests -> stop the server -> requests.parquet (every request) and one summary per level

Skipped (cannot run here): an engine that is absent or cannot express the precision, bad serve
settings. Failed (broke while running): a server that exits or never gets healthy (the reason
quotes its log), an endpoint that cannot be reached, a level whose every request failed. The
server is stopped on every way out of the job, Ctrl-C included (quantbench.loadgen.server).
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from quantbench.backends.base import LoadRequest
from quantbench.cache import cache_root
from quantbench.config import registry
from quantbench.engines.base import ServerRequest, check_precision_engine, resolve_engine
from quantbench.errors import JobSkipped
from quantbench.loadgen.driver import ServeFailed, load_plan, run_levels
from quantbench.loadgen.fidelity_settings import check_settings
from quantbench.loadgen.load import Level, LevelRun
from quantbench.loadgen.profiles import FixedLevels, Profile, load_profile
from quantbench.loadgen.server_metrics import ServerMetrics, check_interval
from quantbench.loadgen.summary import level_records_of, level_row, summarise, write_requests
from quantbench.loadgen.synthetic import longest_request_tokens
from quantbench.loadgen.workload import probe_prompt
from quantbench.measure.energy import energy_metrics, open_energy_counter
from quantbench.measure.telemetry import TelemetrySampler
from quantbench.scenarios.serve_fidelity import ServedFidelity, level_hooks, widened_launch

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.prompts import Prompt
    from quantbench.loadgen.records import RequestRecord
    from quantbench.runtime.device import Device
    from quantbench.runtime.progress import JobProgress

SAMPLE_OUTPUTS = 4


def serve_levels(serve: DictConfig) -> list[Level]:
    """The levels serve.concurrency / serve.request_rate ask for; JobSkipped for settings that cannot run."""
    concurrency = [int(value) for value in serve.concurrency]
    rates = [float(value) for value in serve.request_rate]
    if rates and concurrency not in ([], [1]):
        raise JobSkipped(
            f"serve.concurrency={concurrency} and serve.request_rate={rates} are exclusive: give a concurrency list "
            "(closed loop) or a request_rate list (open loop)"
        )
    if serve.requests_per_level is None and serve.duration_s is None:
        raise JobSkipped(
            "serve.requests_per_level and serve.duration_s are both null: a level would never end; set one"
        )
    if serve.requests_per_level is not None and int(serve.requests_per_level) < 1:
        raise JobSkipped(f"serve.requests_per_level must be at least 1, got {serve.requests_per_level}")
    if rates:
        if any(rate <= 0 for rate in rates):
            raise JobSkipped(f"serve.request_rate values must be positive requests per second, got {rates}")
        return [Level(index, request_rate=rate) for index, rate in enumerate(rates)]
    if not concurrency or any(users < 1 for users in concurrency):
        raise JobSkipped(f"serve.concurrency must list user counts of at least 1, got {concurrency}")
    return [Level(index, concurrency=users) for index, users in enumerate(concurrency)]


def serve_profile(serve: DictConfig) -> Profile:
    """serve.profile with its levels (quantbench.loadgen.profiles); JobSkipped for settings that cannot run."""
    from quantbench.loadgen.driver import saturation_settings

    if int(serve.client_processes) < 1:
        raise JobSkipped(f"serve.client_processes must be at least 1, got {serve.client_processes}")
    saturation_settings(serve)  # thresholds that cannot work are skipped before any model work
    return load_profile(serve, serve_levels(serve))


def measure_serve(
    cfg: DictConfig, device: Device, job_dir: Path, progress: JobProgress
) -> tuple[dict[str, Any], list[str]]:
    from omegaconf import OmegaConf

    from quantbench.loadgen.workload import read_serve_trace, serve_workload
    from quantbench.scenarios.setup import prepare_job

    profile = serve_profile(cfg.serve)
    server_metrics = ServerMetrics(check_interval(cfg.serve))
    trace = read_serve_trace(cfg.serve)  # a malformed trace fails here, before any model work
    if trace is not None and profile.name != "levels":
        raise JobSkipped(
            f"serve.trace replays its own arrivals as one level; serve.profile={profile.name} chooses levels of its "
            "own: use one or the other"
        )
    check_settings(cfg.serve, len(profile.levels) if isinstance(profile, FixedLevels) else None)
    engine_name, engine = resolve_engine(cfg)
    check_precision_engine(cfg, engine_name, engine)
    family_name = registry.families().get(cfg.model.family).name
    if family_name != "decoder":
        raise JobSkipped(
            f"scenario=serve sends text prompts to decoder-only language models; family '{family_name}' is not one"
        )
    if engine.starts_server and hasattr(engine, "launch"):
        reason = engine.unavailable_reason(cfg.engine, cache_root(cfg.cache_dir)) or engine.unsupported_reason(
            cfg.precision, device
        )
        if reason:
            raise JobSkipped(reason)
        endpoint = None
    elif hasattr(engine, "endpoint"):
        endpoint = engine.endpoint(cfg.engine)
        endpoint = probe_endpoint(endpoint)  # an unreachable endpoint fails in a second, before any model work
    else:
        raise JobSkipped(f"engine {engine_name} does not serve (scenario=serve) yet; it runs scenario=offline")
    # The server loads the weights, not this process: the backend's own checks do not apply here.
    setup = prepare_job(cfg, device, progress, backend_runs_here=False)
    spec = setup.spec
    tokenizer = setup.family.load_processor(
        spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
    )
    # The dataset's prompts, a synthetic workload's or a trace's (with its own level): quantbench.loadgen.workload
    prompts, levels, workload_facts = serve_workload(
        cfg, setup, tokenizer, profile.levels if isinstance(profile, FixedLevels) else [], trace
    )
    if trace is not None:
        profile = FixedLevels(levels)  # the trace's own level
    max_tokens = int(cfg.bench.max_new_tokens)
    slo = OmegaConf.to_container(cfg.serve.slo, resolve=True)
    fidelity = ServedFidelity.prepare(
        cfg,
        engine_name,
        setup,
        device,
        tokenizer,
        profile.levels if isinstance(profile, FixedLevels) else None,
        progress,
    )

    def summary_of(run: LevelRun) -> dict[str, Any]:
        """A level's summary row as soon as it ends: the profile decides the next level from it."""
        [records] = level_records_of([run], prompts, max_tokens, tokenizer)
        return level_row(run, records, slo, seed=int(cfg.bench.seed) + run.level.index, trace=cfg.serve.get("trace"))

    metrics: dict[str, Any] = {
        "scenario": "serve",
        "engine": engine_name,
        "max_new_tokens": max_tokens,
        "profile": profile.name,
        "client_processes": int(cfg.serve.client_processes),
    }
    metrics |= workload_facts
    runs: list[LevelRun] = []
    # The device's energy counter, read by the telemetry thread alone; each level's joules are
    # taken from its samples over the level's measured window (warm-up excluded).
    counter, energy_reason = open_energy_counter(device.type, device.index)
    telemetry = TelemetrySampler(device.type, device.index, energy=counter)
    telemetry.phase = "start-up"
    try:
        with telemetry:
            if endpoint is None:
                metrics |= run_on_server(
                    cfg,
                    engine_name,
                    engine,
                    setup.load_request(cfg, device),
                    job_dir,
                    profile,
                    prompts,
                    runs,
                    progress,
                    telemetry,
                    server_metrics,
                    summary_of,
                    fidelity,
                )
            else:
                metrics |= {
                    "server_url": endpoint.base_url,
                    "prefix_caching": "unknown (an endpoint quantbench did not start)",
                }
                options, found = request_options(
                    endpoint, probe_prompt(prompts), lambda tokens: {}, max_tokens, float(cfg.serve.request_timeout_s)
                )
                metrics |= found
                if fidelity is not None:
                    fidelity.attach(endpoint, float(cfg.serve.request_timeout_s))
                    fidelity.measure_no_load(progress)
                server_metrics.start(endpoint.base_url, endpoint.headers)
                metrics |= run_levels(
                    load_plan(cfg, endpoint, options),
                    profile,
                    prompts,
                    runs,
                    progress,
                    summarise=summary_of,
                    **level_hooks(
                        fidelity,
                        None,
                        each_level(telemetry_label(telemetry), server_metrics.on_level),
                        server_metrics.on_measure,
                    ),
                )
                server_metrics.stop()
    finally:
        records = level_records_of(runs, prompts, max_tokens, tokenizer)
        write_requests(job_dir, records)
        telemetry.write(job_dir)
        server_metrics.write(job_dir)  # stops its scraping first, on every way out
        if fidelity is not None:
            fidelity.stop_beside()
            fidelity.write_records(job_dir)
    level_rows = summarise(cfg, runs, records)
    for row, server_columns in zip(level_rows, server_metrics.level_columns(runs)):
        row |= server_columns
    if fidelity is not None:
        fidelity.level_columns(level_rows, runs)
        metrics |= fidelity.job_metrics()
    for row, run in zip(level_rows, runs):
        joules = telemetry.energy_between(run.started_at, run.finished_at)
        reason = energy_reason or "the energy counter's samples do not cover this level"
        row |= energy_metrics(
            joules, run.duration_s, round(row["output_tokens_per_s"] * run.duration_s), counter, reason
        )
    metrics |= (
        energy_metrics(None, 0.0, 0, None, energy_reason)
        if counter is None
        else {"energy_source": counter.source, "energy_scope": counter.scope}
    )
    metrics |= telemetry.summary()
    metrics |= server_metrics.summary()
    metrics |= {
        "eos_ignored": every_request_ran_to(max_tokens, records),
        "chat_template": bool(prompts[0].chat),
        "load_mode": profile.load_mode,
        "n_levels": len(level_rows),
        "n_requests": sum(row["n_requests"] for row in level_rows),
        "n_failed_requests": sum(row["n_failed_requests"] for row in level_rows),
        "model_note": cfg.model.note,
        **setup.hardware.metrics(),
        "levels": level_rows,
    }
    outputs = [exchange.text for exchange in runs[0].exchanges if exchange.text][:SAMPLE_OUTPUTS] if runs else []
    return metrics, outputs


def run_on_server(
    cfg: DictConfig,
    engine_name: str,
    engine: Any,
    request: LoadRequest,
    job_dir: Path,
    profile: Profile,
    prompts: list[Prompt],
    runs: list[LevelRun],
    progress: JobProgress,
    telemetry: TelemetrySampler,
    server_metrics: ServerMetrics,
    summarise: Callable[[LevelRun], dict[str, Any]],
    fidelity: ServedFidelity | None = None,
) -> dict[str, Any]:
    """Start the engine's server on the precision's weights, run the levels (appended to `runs`),
    stop it; the job-level facts of the server. `telemetry` samples the server's process,
    `server_metrics` scrapes its /metrics; `fidelity` (serve.fidelity) widens the server's limits and
    measures it at no load and beside a level."""
    from quantbench.engines.openai import Endpoint
    from quantbench.engines.weights import served_weights
    from quantbench.jobdir import SERVER_LOG_FILE
    from quantbench.loadgen.server import LOOPBACK, ServerProcess, free_port

    device, spec = request.device, request.model
    weights, weight_facts = served_weights(request, registry.backends().get(cfg.precision.backend))
    from quantbench.runtime.threads import job_threads

    port = free_port()
    # The server's CPU threads: hardware.threads, as offline jobs use (torch's through OMP_NUM_THREADS).
    threads = None if device.is_cuda else job_threads(cfg.hardware)
    launch = widened_launch(engine, fidelity)(
        ServerRequest(
            weights=str(weights),
            precision=cfg.precision,
            engine=cfg.engine,
            device=device,
            host=LOOPBACK,
            port=port,
            seed=int(cfg.bench.seed),
            trust_remote_code=bool(spec.config.trust_remote_code),
            threads=threads,
            cache_dir=request.cache_dir,
            max_concurrency=profile.max_concurrency,
            max_sequence_tokens=longest_request_tokens(prompts, int(cfg.bench.max_new_tokens)),
        )
    )
    metrics: dict[str, Any] = weight_facts | {
        "server_command": launch.command,
        "server_command_line": shlex.join(launch.command),
        "prefix_caching": launch.prefix_caching,
        # What the engine says of its own server, e.g. that it serves one request at a time.
        **launch.facts,
    }
    environment = dict(launch.environment)
    if threads is not None:
        metrics["threads"] = threads
        environment["OMP_NUM_THREADS"] = str(threads)
    with ServerProcess(launch.command, job_dir / SERVER_LOG_FILE, environment, launch.memory_setting) as server:
        if server.process is not None:
            telemetry.watch(server.process.pid)  # its CPU time and memory, not this client's
        with progress.long_step(
            f"starting {engine_name} for {cfg.model.name} {cfg.precision.name} (log: {SERVER_LOG_FILE})"
        ):
            metrics["server_startup_s"] = server.wait_healthy(
                f"http://{LOOPBACK}:{port}{launch.health_path}", float(cfg.serve.startup_timeout_s)
            )
        served = Endpoint(base_url=f"http://{LOOPBACK}:{port}", model=launch.model_name)
        with progress.long_step(f"probing what {engine_name} accepts"):
            options, found = request_options(
                served,
                probe_prompt(prompts),
                engine.request_options,
                int(cfg.bench.max_new_tokens),
                float(cfg.serve.request_timeout_s),
            )
        metrics |= found
        if fidelity is not None:
            fidelity.attach(served, float(cfg.serve.request_timeout_s))
            fidelity.measure_no_load(progress)
        server_metrics.start(served.base_url)
        metrics |= run_levels(
            load_plan(cfg, served, options),
            profile,
            prompts,
            runs,
            progress,
            summarise=summarise,
            **level_hooks(
                fidelity,
                server.check_running,
                each_level(telemetry_label(telemetry), server_metrics.on_level),
                server_metrics.on_measure,
            ),
        )
        server_metrics.stop()  # its last scrape while the server still runs
    return metrics


def request_options(
    endpoint: Endpoint,
    prompt: Prompt,
    engine_options: Callable[[int], dict[str, Any]],
    max_tokens: int,
    timeout_s: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the optional fields every request sends, what the probe found): the server is asked with
    tiny requests which of usage in the stream, the engine's fields and engine.extra_body it takes."""
    from quantbench.loadgen.capabilities import PROBE_MAX_TOKENS, offered_fields, probe_capabilities

    found = probe_capabilities(
        endpoint, prompt, offered_fields(engine_options(PROBE_MAX_TOKENS), endpoint.extra_body), timeout_s
    )
    return found.options(offered_fields(engine_options(max_tokens), endpoint.extra_body)), found.metrics()


def every_request_ran_to(max_tokens: int, records: list[list[RequestRecord]]) -> bool:
    """What the responses show: every successful request ended for its length, at the max_tokens it
    asked for (its own, else `max_tokens`): the end of sequence was held back, whichever field or
    setting did it."""
    ok = [record for level in records for record in level if record.ok]
    return bool(ok) and all(
        record.finish_reason == "length" and record.output_tokens == (record.output_tokens_requested or max_tokens)
        for record in ok
    )


def telemetry_label(telemetry: TelemetrySampler):
    """Labels the telemetry samples with the level being driven."""

    def label(level: Level) -> None:
        telemetry.phase = level.label

    return label


def each_level(*callbacks: Callable[[Level], None]) -> Callable[[Level], None]:
    """One on_level callback that calls each of these in turn."""

    def told(level: Level) -> None:
        for callback in callbacks:
            callback(level)

    return told


def probe_endpoint(endpoint: Endpoint) -> Endpoint:
    """GET /v1/models: ServeFailed naming a refused or unreachable connection; the endpoint, with
    the served model's name where engine.model left it open."""
    import aiohttp

    from quantbench.loadgen.client import describe_transport_error, get_json

    url = f"{endpoint.base_url}/v1/models"
    try:
        status, listing = asyncio.run(get_json(url, endpoint.headers, 30.0))
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise ServeFailed(f"cannot reach engine.url: {describe_transport_error(error, url)}") from None
    if status != 200:
        raise ServeFailed(f"engine.url answered GET {url} with HTTP {status}: {str(listing)[:200]}")
    if endpoint.model is not None:
        return endpoint
    listed = ((listing.get("data") if isinstance(listing, dict) else None) or [{}])[0].get("id")
    if not listed:
        raise ServeFailed(f"GET {url} lists no model; name the served model with engine.model=NAME")
    return replace(endpoint, model=listed)
