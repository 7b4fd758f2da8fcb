"""The prompts of a serving job, and a trace's level: the dataset's samples as they come, a synthetic
workload cut to its exact lengths (dataset=synthetic, dataset=long-context), or a replayed trace
(serve.trace).

Synthetic and trace requests must fit the model's context, read from the model's config
(quantbench.quality.scoring.context_limit_tokens, the one owner of that reading): input plus output,
and for a conversation its last turn with the whole history. A synthetic input drawn longer, with
dataset.input_tokens.max null, is clipped to the context minus its output; with a max set, or in a
trace, it is a skipped job naming the setting or the line. bench.max_input_tokens, the cut of the
datasets' own prompts, does not apply to synthetic or trace prompts: their lengths are the workload.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.loadgen.load import Level
    from quantbench.loadgen.prompts import Prompt
    from quantbench.loadgen.trace import TraceRequest
    from quantbench.models.source import ModelSpec
    from quantbench.scenarios.setup import JobSetup

log = logging.getLogger("quantbench")


def model_context_tokens(spec: ModelSpec) -> int | None:
    """The model's context (max_position_embeddings) as its config states it; None where the config
    cannot be read or states none (then lengths are not checked against it)."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    from quantbench.quality.scoring import context_limit_tokens

    try:
        config = AutoConfig.from_pretrained(
            spec.load_path, revision=spec.revision, trust_remote_code=bool(spec.config.trust_remote_code)
        )
    except Exception as error:  # a config transformers cannot read: the server will say what it takes
        log.warning("the context of %s is unknown (%s); request lengths are not checked", spec.name, error)
        return None
    return context_limit_tokens(SimpleNamespace(config=config))


def read_serve_trace(serve: DictConfig) -> list[TraceRequest] | None:
    """serve.trace's requests (read before any model work, so a malformed file fails in a second);
    None without a trace. JobSkipped for settings that cannot go with one."""
    from quantbench.loadgen.trace import check_speed, read_trace

    if not serve.get("trace"):
        return None
    concurrency, rates = [int(v) for v in serve.concurrency], [float(v) for v in serve.request_rate]
    if rates or concurrency not in ([], [1]):
        raise JobSkipped(
            f"serve.trace replays its own arrivals; it cannot go with serve.concurrency={concurrency} or "
            f"serve.request_rate={rates}: leave them at their defaults"
        )
    check_speed(serve.get("trace_speed"))
    return read_trace(str(serve.trace))


def _fits(prompts: list[Prompt], context_tokens: int | None, max_new_tokens: int, what: str) -> None:
    from quantbench.loadgen.synthetic import longest_request_tokens

    if context_tokens is None:
        return
    for prompt in prompts:
        if prompt.turns and longest_request_tokens([prompt], max_new_tokens) > context_tokens:
            raise JobSkipped(
                f"{what}: conversation {prompt.conversation} grows to about "
                f"{longest_request_tokens([prompt], max_new_tokens)} tokens with its history, beyond the model's "
                f"context of {context_tokens}; fewer turns or shorter requests"
            )


def serve_workload(
    cfg: DictConfig, setup: JobSetup, tokenizer: Any, levels: list[Level], trace: list[TraceRequest] | None
) -> tuple[list[Prompt], list[Level], dict[str, Any]]:
    """(the prompts, the levels: a trace's own level replaces them, facts for result.json)."""
    from quantbench.loadgen.load import Level
    from quantbench.loadgen.prompts import build_prompts, uses_chat
    from quantbench.loadgen.synthetic import cut_prompts, fit_context, is_synthetic, shapes_of

    samples, max_new_tokens = setup.dataset, int(cfg.bench.max_new_tokens)
    chat = uses_chat(tokenizer, bool(cfg.dataset.chat_template))
    if trace is None and not is_synthetic(samples):
        prompts = build_prompts(samples, tokenizer, int(cfg.bench.max_input_tokens), bool(cfg.dataset.chat_template))
        return prompts, levels, {"workload": "dataset"}
    context = model_context_tokens(setup.spec)
    facts: dict[str, Any] = {"model_context_tokens": context}
    if trace is not None:
        from quantbench.loadgen.trace import check_speed, schedule, trace_shapes

        speed = check_speed(cfg.serve.get("trace_speed"))
        path = str(cfg.serve.trace)
        shapes = trace_shapes(trace, samples, int(cfg.bench.seed), context, path)
        prompts, off_target = cut_prompts(shapes, tokenizer, chat, f"serve.trace {path}")
        _fits(prompts, context, max_new_tokens, f"serve.trace {path}")
        levels = [Level(0, schedule=schedule(trace, prompts, speed))]
        facts |= {
            "workload": "trace",
            "trace_requests": len(trace),
            "trace_speed": speed,
            "trace_span_s": trace[-1].arrival_s / speed,
        }
    else:
        clip = cfg.dataset.input_tokens.get("max") is None
        shapes = fit_context(shapes_of(samples), context, clip, "dataset.input_tokens")
        prompts, off_target = cut_prompts(shapes, tokenizer, chat, "dataset.input_tokens")
        _fits(prompts, context, max_new_tokens, "dataset.conversation.turns")
        facts["workload"] = "synthetic"
    facts["synthetic_inputs_off_target"] = off_target
    return prompts, levels, facts


def probe_prompt(prompts: list[Prompt]) -> Prompt:
    """The capability probe's prompt: the shortest, alone (no later turns) and at the probe's own
    few tokens, so a long-context workload does not make the probe slow."""
    from dataclasses import replace

    return replace(min(prompts, key=lambda prompt: prompt.input_tokens), max_tokens=None, turns=())
