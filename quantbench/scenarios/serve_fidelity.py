"""scenario=serve's served fidelity (serve.fidelity, docs/serving.md "Fidelity through the server").

    check the settings (JobSkipped, before any model work) -> the protocol the engine's server speaks,
    or why it gives no log-probabilities -> the evaluation windows and the reference (the offline KL
    scorer's cache entry; computed at the reference precision, in this process, before the server
    starts, on a miss) -> what the server must allow (a context for the longest window, the
    log-probabilities asked, one slot more for the run beside a level) -> a run at no load before the
    levels, one beside the measured requests of the level serve.fidelity.under_load_level (from the
    end of its warm-up to its end) -> the job's columns, each level's fidelity and quality-adjusted
    goodput, `served_fidelity.parquet` (one row per scored token)

A server that offers no log-probabilities, or refuses the requests, leaves the job ok: the reason is
recorded (`served_fidelity_unavailable`, `served_fidelity_error_no_load` / `..._under_load`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from quantbench.loadgen.fidelity_protocols import COMPLETIONS_ECHO, METHODS, WindowTask
from quantbench.loadgen.fidelity_settings import protocol_for
from quantbench.loadgen.quality_goodput import quality_goodput_columns

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.engines.base import ServerRequest
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.fidelity_probe import ProbeBeside, ProbeRun
    from quantbench.loadgen.load import Level, LevelRun
    from quantbench.quality.fidelity import ReferenceDistribution

log = logging.getLogger("quantbench")

NO_LOAD, UNDER_LOAD = "no_load", "under_load"
# The columns a level row carries of the fidelity that applies to it.
LEVEL_FIDELITY = (
    "served_top1_agree",
    "served_top1_agree_ci_low",
    "served_top1_agree_ci_high",
    "served_kld_mean",
    "served_kld_mean_ci_low",
    "served_kld_mean_ci_high",
    "served_fidelity_tokens",
)


@dataclass(frozen=True)
class FidelityWindow:
    task: WindowTask
    reference: ReferenceDistribution  # the rows of the scored tokens


def fidelity_windows(windows: Any, reference: ReferenceDistribution, tokens: int) -> list[FidelityWindow]:
    """Of each window, its last `tokens` scored tokens (the longest context) and their reference rows."""
    out, offset = [], 0
    for index, window in enumerate(windows.windows):
        count = min(tokens, window.n_scored)
        length = window.end - window.begin
        positions = list(range(length - count, length))
        start = offset + window.n_scored - count
        out.append(
            FidelityWindow(
                WindowTask(index, windows.window_ids(window), positions), reference.rows(start, start + count)
            )
        )
        offset += window.n_scored
    return out


def _phase(metrics: dict[str, Any], phase: str) -> dict[str, Any]:
    """served_top1_agree_ci_low -> served_top1_agree_<phase>_ci_low (interval columns keep their end)."""
    named = {}
    for key, value in metrics.items():
        end = next((tail for tail in ("_ci_low", "_ci_high") if key.endswith(tail)), "")
        named[f"{key[: len(key) - len(end)]}_{phase}{end}"] = value
    return named


class ServedFidelity:
    """The served fidelity of one serving job: prepared before the server starts, then measured."""

    def __init__(self, cfg: DictConfig, protocol: str | None, unavailable: str | None, levels: list[Level] | None):
        self.settings = cfg.serve.fidelity
        self.confidence = float(cfg.quality.confidence)
        self.min_top1, self.max_kld = cfg.serve.fidelity_min_top1, cfg.serve.fidelity_max_kld
        self.protocol, self.unavailable = protocol, unavailable
        index = self.settings.under_load_level
        # A profile that decides its levels as it runs (levels None) names the level by its position.
        if index is None:
            self.under_load_index = None
        elif levels is None:
            self.under_load_index = int(index)
        else:
            self.under_load_index = levels[int(index)].index if levels else None
        self.windows: list[FidelityWindow] = []
        self.facts: dict[str, Any] = {}
        self.token_of: Callable[[str], int | None] | None = None
        self.no_load: ProbeRun | None = None
        self.under_load: ProbeRun | None = None
        self.beside: ProbeBeside | None = None
        self.probe: Any = None

    @classmethod
    def prepare(
        cls,
        cfg: DictConfig,
        engine_name: str,
        setup: Any,
        device: Any,
        tokenizer: Any,
        levels: list[Level] | None,
        progress: Any,
    ) -> ServedFidelity | None:
        """None when serve.fidelity is off; the windows and reference are ready when it can run."""
        if not cfg.serve.fidelity.enabled:
            return None
        protocol, unavailable = protocol_for(str(cfg.serve.fidelity.protocol), engine_name)
        fidelity = cls(cfg, protocol, unavailable, levels)
        if protocol is None:
            log.warning("served fidelity unavailable: %s", unavailable)
            return fidelity
        from omegaconf import OmegaConf

        from quantbench.cache import cache_root
        from quantbench.quality.scoring import text_tokenizer
        from quantbench.quality.text import cached_reference, evaluation_windows

        quality = OmegaConf.create(OmegaConf.to_container(cfg.quality, resolve=True))
        quality.limit = int(cfg.serve.fidelity.windows)  # the offline scorer's first windows: its cache entry
        text_tokens = text_tokenizer(tokenizer)
        with progress.long_step(f"served fidelity: the reference distributions of {quality.text.name}"):
            windows = evaluation_windows(quality, text_tokens)
            reference, name, reference_top_k = cached_reference(
                quality, windows, setup.family, setup.spec, device, cache_root(cfg.cache_dir)
            )
        fidelity.windows = fidelity_windows(windows, reference, int(cfg.serve.fidelity.tokens))
        if protocol == COMPLETIONS_ECHO:
            fidelity.token_of = token_lookup(text_tokens)
        fidelity.facts = {
            "served_fidelity_reference": name,
            "served_fidelity_reference_top_k": reference_top_k,
            "served_fidelity_windows": len(fidelity.windows),
            "served_fidelity_context_tokens": windows.context_tokens,
            "served_fidelity_text": str(quality.text.name),
        }
        return fidelity

    # What the server must allow -------------------------------------------------------------------

    def sequence_tokens(self) -> int:
        """The longest fidelity request: a whole window and the one token generated after it."""
        return max((len(window.task.token_ids) + 1 for window in self.windows), default=0)

    def server_request(self, request: ServerRequest) -> ServerRequest:
        """The launch request widened for the fidelity run: the window's context, the log-probabilities
        asked (vLLM's --max-logprobs), and one slot more beside the busiest level (llama-server)."""
        if not self.windows:
            return request
        longest = max(request.max_sequence_tokens or 0, self.sequence_tokens())
        users = request.max_concurrency
        extra = users + 1 if users is not None and self.under_load_index is not None else users
        return replace(
            request, max_sequence_tokens=longest, max_concurrency=extra, max_logprobs=int(self.settings.top_k)
        )

    # The runs ---------------------------------------------------------------------------------------

    def attach(self, endpoint: Endpoint, timeout_s: float) -> None:
        from quantbench.loadgen.fidelity_probe import Probe

        if self.windows:
            self.probe = Probe(
                self.protocol,
                [w.task for w in self.windows],
                endpoint,
                int(self.settings.top_k),
                timeout_s,
                self.token_of,
            )

    def measure_no_load(self, progress: Any) -> None:
        if self.probe is None:
            return
        with progress.long_step(f"served fidelity at no load ({self.protocol}, {len(self.windows)} windows)"):
            self.no_load = self.probe.run_once()
        if self.no_load.error:
            log.warning("served fidelity at no load: %s", self.no_load.error)

    def on_measure(self, level: Level) -> None:
        """run_levels' on_measure: the chosen level's warm-up has ended; the run beside it starts."""
        self.stop_beside()
        if self.probe is not None and level.index == self.under_load_index:
            from quantbench.loadgen.fidelity_probe import ProbeBeside

            self.beside = ProbeBeside(self.probe)
            self.beside.start()

    def after_level(self, inner: Callable[[bool], None] | None) -> Callable[[bool], None]:
        """run_levels' check, called as each level ends (with whether its requests failed): stops the
        run beside it, then calls `inner`."""

        def ended(requests_failed: bool) -> None:
            self.stop_beside()
            if inner is not None:
                inner(requests_failed)

        return ended

    def stop_beside(self) -> None:
        if self.beside is not None:
            self.under_load = self.beside.stop()
            self.beside = None

    # The results ------------------------------------------------------------------------------------

    def _metrics(self, run: ProbeRun | None) -> dict[str, Any] | None:
        from quantbench.quality.served import ServedTopK, served_fidelity_metrics

        if run is None or run.error or run.n_tokens == 0:
            return None
        pairs = [
            (window.reference.rows(0, len(part.top_k)), ServedTopK.from_rows(part.top_k))
            for window, part in zip(self.windows, run.scored)
            if part.top_k
        ]
        returned = [served.returned_k() for _, served in pairs]
        return served_fidelity_metrics(pairs, self.confidence) | {
            "served_fidelity_returned_k_min": min(low for low, _ in returned),
            "served_fidelity_requests": run.n_requests,
            "served_fidelity_s": run.finished_at - run.started_at,
        }

    def _why_none(self, run: ProbeRun | None, phase: str) -> str | None:
        if self.unavailable:
            return None  # said once, as served_fidelity_unavailable
        if phase == UNDER_LOAD and self.under_load_index is None:
            return "not asked (serve.fidelity.under_load_level is null)"
        if run is None:
            return "not measured (the job ended before)"
        if run.error:
            return run.error
        return (
            "the level ended before a token was scored; raise serve.requests_per_level" if run.n_tokens == 0 else None
        )

    def job_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "served_fidelity_protocol": self.protocol,
            "served_fidelity_method": METHODS.get(self.protocol or "", None),
            "served_fidelity_top_k": int(self.settings.top_k),
            "served_fidelity_unavailable": self.unavailable,
            "served_fidelity_under_load_level": self.under_load_index,
            **self.facts,
        }
        for phase, run in ((NO_LOAD, self.no_load), (UNDER_LOAD, self.under_load)):
            found = self._metrics(run)
            if found is not None:
                metrics |= _phase(found, phase)
            metrics[f"served_fidelity_error_{phase}"] = self._why_none(run, phase)
        return metrics

    def level_columns(self, rows: list[dict[str, Any]], runs: list[LevelRun]) -> None:
        """Each level's fidelity (its own under load, else the no-load one) and quality goodput."""
        no_load, under_load = self._metrics(self.no_load), self._metrics(self.under_load)
        for row, run in zip(rows, runs):
            own = run.level.index == self.under_load_index and under_load is not None
            applies = under_load if own else no_load
            row |= {name: (applies or {}).get(name) for name in LEVEL_FIDELITY}
            row["fidelity_measured_at"] = (
                "under load (this level)" if own else "no load" if applies is not None else None
            )
            if run.level.index == self.under_load_index and self.under_load is not None:
                row["served_fidelity_overlap"] = self.under_load.overlap(run.started_at, run.finished_at)
            row |= quality_goodput_columns(row, applies, self.min_top1, self.max_kld)

    def write_records(self, job_dir: Path) -> None:
        """served_fidelity.parquet: one row per scored token and phase (the raw record)."""
        from quantbench.atomic import write_parquet_atomic
        from quantbench.jobdir import SERVED_FIDELITY_FILE
        from quantbench.loadgen.fidelity_records import fidelity_frame

        frame = fidelity_frame(
            [(phase, run) for phase, run in ((NO_LOAD, self.no_load), (UNDER_LOAD, self.under_load)) if run],
            self.windows,
        )
        if frame.height:
            write_parquet_atomic(Path(job_dir) / SERVED_FIDELITY_FILE, frame)


def token_lookup(tokenizer: Any) -> Callable[[str], int | None]:
    """A token's text -> its id, for servers that name tokens by text; a text two tokens share is None."""
    ids: dict[str, int | None] = {}
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        ids[text] = None if text in ids else token_id
    return ids.get


def level_hooks(
    fidelity: ServedFidelity | None,
    check: Callable[[bool], None] | None,
    on_level: Callable[[Level], None] | None,
    on_measure: Callable[[Level], None] | None = None,
) -> dict[str, Any]:
    """run_levels' `check`, `on_level` and `on_measure`, with the run beside a level started when its
    measured requests start (after `on_measure`, which reads the server's counters with nothing in
    flight) and stopped when it ends."""
    if fidelity is None:
        return {"check": check, "on_level": on_level, "on_measure": on_measure}

    def measuring(level: Level) -> None:
        if on_measure is not None:
            on_measure(level)
        fidelity.on_measure(level)

    return {"check": fidelity.after_level(check), "on_level": on_level, "on_measure": measuring}


def widened_launch(engine: Any, fidelity: ServedFidelity | None) -> Callable[[ServerRequest], Any]:
    """The engine's `launch`, given the request the fidelity run needs (ServedFidelity.server_request)."""
    if fidelity is None:
        return engine.launch
    return lambda request: engine.launch(fidelity.server_request(request))
