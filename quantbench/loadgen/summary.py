"""A serving job's results: `requests.parquet` (every request) and one summary per level."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.loadgen.load import LevelRun
    from quantbench.loadgen.prompts import Prompt
    from quantbench.loadgen.records import RequestRecord


def level_records_of(
    runs: list[LevelRun], prompts: list[Prompt], max_tokens: int, tokenizer: Any
) -> list[list[RequestRecord]]:
    from quantbench.loadgen.prompts import count_output_tokens
    from quantbench.loadgen.records import level_records
    from quantbench.loadgen.rendering import count_prompt_tokens
    from quantbench.loadgen.synthetic import all_prompts

    by_id = {prompt.id: prompt for prompt in all_prompts(prompts)}  # a conversation's later turns too
    return [
        level_records(
            run,
            by_id,
            max_tokens,
            lambda text: count_output_tokens(tokenizer, text),
            lambda prompt: count_prompt_tokens(tokenizer, prompt),
        )
        for run in runs
    ]


def write_requests(job_dir: Path, records: list[list[RequestRecord]]) -> None:
    from quantbench.atomic import write_parquet_atomic
    from quantbench.jobdir import REQUESTS_FILE
    from quantbench.loadgen.records import records_frame

    if records:
        write_parquet_atomic(
            Path(job_dir) / REQUESTS_FILE, records_frame([record for level in records for record in level])
        )


def summarise(cfg: DictConfig, runs: list[LevelRun], records: list[list[RequestRecord]]) -> list[dict[str, Any]]:
    """One summary per level: its load, then every statistic of quantbench.loadgen.metrics."""
    from omegaconf import OmegaConf

    slo = OmegaConf.to_container(cfg.serve.slo, resolve=True)
    return [
        level_row(run, level_records, slo, seed=int(cfg.bench.seed) + run.level.index, trace=cfg.serve.get("trace"))
        for run, level_records in zip(runs, records)
    ]


def level_row(
    run: LevelRun, records: list[RequestRecord], slo: dict[str, Any], seed: int, trace: str | None = None
) -> dict[str, Any]:
    """A level's summary: its identity (load, profile, role; a replayed trace's file), its statistics,
    its workload (lengths, the usage check, send lag), how it ended, and whether it met serve.slo
    (quantbench.loadgen.slo; null without an objective)."""
    from quantbench.loadgen.level_stats import workload_columns
    from quantbench.loadgen.metrics import level_summary
    from quantbench.loadgen.slo import misses, slo_limits

    level = run.level
    row = {
        "level": level.index,
        "concurrency": level.concurrency,
        "request_rate": level.request_rate,
        "profile": level.profile,
        "role": level.kind,
        # A replayed trace (serve.trace): its file; its level has neither load number.
        "trace": None if level.schedule is None else str(trace),
        **level_summary(records, run.duration_s, slo, seed=seed),
        **workload_columns(records),  # lengths, the usage check, send lag
        "warmup_failed_requests": run.warmup_failed,
        "prompts_repeated": run.prompts_repeated,
        "oversaturated": run.stopped_early_reason is not None,
        "stopped_early": run.stopped_early_reason is not None,
        "stopped_early_reason": run.stopped_early_reason,
        "client_processes": run.client_processes,
    }
    limits = slo_limits(slo)
    broken = misses(row, limits) if limits else None
    return row | {
        "level_meets_slo": None if broken is None else not broken,
        "level_slo_misses": "; ".join(broken or []) or None,
    }


def summary_line(metrics: dict[str, Any]) -> str:
    """The job's log line: each level's throughput and latency."""
    parts = []
    for level in metrics.get("levels", []):
        if level.get("trace"):
            load = "trace"
        elif level["concurrency"] is not None:
            load = f"c={level['concurrency']}"
        else:
            load = f"rate={level['request_rate']:g}/s"
        if level.get("role") in ("synchronous", "throughput", "probe"):
            load += f" ({level['role']})"
        if level.get("stopped_early"):
            load += " (over-saturated, stopped early)"
        e2e = level.get("e2e_p50_ms")
        parts.append(
            f"{load}: {level['request_throughput_per_s']:.2f} req/s, {level['output_tokens_per_s']:.1f} tok/s, "
            f"E2E p50 {e2e:.0f} ms, {level['n_failed_requests']}/{level['n_requests']} failed"
            if e2e is not None
            else f"{load}: {level['n_failed_requests']}/{level['n_requests']} failed"
        )
    line = f"{metrics.get('engine')} serve: " + "; ".join(parts)
    if metrics.get("slo_search_reason"):
        line += f"; slo-search: {metrics['slo_search_reason']}"
    return line
