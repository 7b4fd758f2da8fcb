"""The served-fidelity settings (serve.fidelity, serve.fidelity_min_top1, serve.fidelity_max_kld):
checked before any model work (JobSkipped with the reason), and the protocol each engine's server
speaks, or why it offers no log-probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantbench.errors import JobSkipped
from quantbench.loadgen.fidelity_protocols import COMPLETIONS_ECHO, LLAMA_SERVER, PROTOCOLS, VLLM
from quantbench.loadgen.quality_goodput import top1_limit_problem

if TYPE_CHECKING:
    from omegaconf import DictConfig

AUTO = "auto"
PROTOCOL_OF_ENGINE = {
    "llama.cpp": LLAMA_SERVER,
    "vllm": VLLM,
    "openai": COMPLETIONS_ECHO,
    "llama-cpp-python": COMPLETIONS_ECHO,  # echo with logprobs, where its server runs with logits_all
}
NO_LOG_PROBABILITIES = {
    "transformers": "`transformers serve` returns no log-probabilities: it ignores logprobs and top_logprobs and "
    "has no echo (unused fields in transformers/cli/serving/completion.py and chat_completion.py, 5.25)",
}


def check_settings(serve: DictConfig, n_levels: int | None) -> None:
    """JobSkipped for serve.fidelity settings that cannot run (before any model work); `n_levels` None:
    a profile that decides its levels as it runs (sweep, slo-search), whose count is not known yet."""
    fidelity = serve.fidelity
    problem = top1_limit_problem(serve.fidelity_min_top1, "serve.fidelity_min_top1")
    if problem:
        raise JobSkipped(problem)
    if serve.fidelity_max_kld is not None and serve.fidelity_max_kld < 0:
        raise JobSkipped(f"serve.fidelity_max_kld={serve.fidelity_max_kld:g} is negative; a KL divergence is >= 0 nats")
    limits = [name for name in ("fidelity_min_top1", "fidelity_max_kld") if serve.get(name) is not None]
    if limits and not fidelity.enabled:
        raise JobSkipped(f"serve.{limits[0]} judges the served fidelity, which is off: set serve.fidelity.enabled=true")
    if not fidelity.enabled:
        return
    if fidelity.protocol not in (AUTO, *PROTOCOLS):
        raise JobSkipped(
            f"unknown serve.fidelity.protocol '{fidelity.protocol}'; choose one of: {', '.join((AUTO, *PROTOCOLS))}"
        )
    for name in ("windows", "tokens", "top_k"):
        if int(fidelity[name]) < 1:
            raise JobSkipped(f"serve.fidelity.{name} must be at least 1, got {fidelity[name]}")
    index = fidelity.under_load_level
    if index is not None and n_levels is None and int(index) < 0:
        raise JobSkipped(
            f"serve.fidelity.under_load_level={index}: serve.profile={serve.profile} decides its levels as it runs, "
            "so the last one is not known in advance; give a level's position (0, 1, ...)"
        )
    if index is not None and n_levels is not None and not -n_levels <= int(index) < n_levels:
        raise JobSkipped(
            f"serve.fidelity.under_load_level={index}, but the job has {n_levels} levels "
            f"(0..{n_levels - 1}; -1: the last; null: none)"
        )


def protocol_for(setting: str, engine_name: str) -> tuple[str | None, str | None]:
    """(protocol, None), or (None, why this engine's server gives no log-probabilities)."""
    if setting != AUTO:
        return setting, None
    if engine_name in NO_LOG_PROBABILITIES:
        return None, NO_LOG_PROBABILITIES[engine_name]
    if engine_name in PROTOCOL_OF_ENGINE:
        return PROTOCOL_OF_ENGINE[engine_name], None
    return None, (
        f"no log-probability protocol is known for engine {engine_name}; "
        f"name one with serve.fidelity.protocol ({', '.join(PROTOCOLS)})"
    )
