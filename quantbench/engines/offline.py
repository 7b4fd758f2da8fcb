"""What an engine supplies to the offline scenario: an `OfflineRunner`.

The offline scenario (quantbench/scenarios/offline.py) owns everything that is the same for every
engine: the batch, the timed step and loop with energy and telemetry around it, the iteration
samples and `iterations.parquet`, the speed, memory, energy and phase metrics, and the quality call
after them. A runner supplies only what differs: loading the weights, generating the batch for
`max_new_tokens` and saying when the first tokens existed, its own facts (the weights as it holds
them, llama.cpp's pp/tg rates and build) and its own quality scorer. An engine with `offline = True`
makes its runner with `offline_runner(job)` (transformers: quantbench/engines/transformers_offline.py,
llama.cpp: quantbench/engines/llama_cpp.py); a vLLM offline runner would be a third. An offline
engine without that method (a plugin's) gets the transformers runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.backends.base import Backend, LoadedModel, LoadRequest
    from quantbench.data.base import Sample
    from quantbench.families.base import ModelFamily
    from quantbench.measure.loop import IterationSample
    from quantbench.measure.timing import FirstTokenClock
    from quantbench.runtime.device import Device

# evaluate(scorer, observers=()): quantbench.quality.evaluate_quality on the loaded model, scored by
# `scorer` (an engine's own TokenScorer), or by quantbench's TokenScorer on the transformers model when
# None; `observers` see the perplexity/KL pass's log-probabilities too (quality/text.py's WindowObserver).
Evaluate = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class OfflineJob:
    """What a runner is made from: the job's config, device and plugins, resolved by the scenario."""

    cfg: DictConfig  # bench (seed, max_input_tokens, max_new_tokens), dataset, quality settings
    device: Device
    family: ModelFamily
    backend: Backend  # the precision's backend: it loads (and quantizes, or makes the file of) the weights
    request: LoadRequest  # what backend.load gets; request.model is the resolved model
    threads: int  # hardware.threads, already set for torch (quantbench/runtime/threads.py)


@dataclass(frozen=True)
class Generation:
    """One generation of the whole batch."""

    tokens: Any  # the engine's generated tokens, for its `decode`
    n_input_tokens: int  # real (non-padding) input tokens over the batch
    n_generated_tokens: int  # over the batch
    new_tokens_per_prompt: int  # tokens generated for each prompt: TPOT spreads the decode over these less one


@runtime_checkable
class OfflineRunner(Protocol):
    """One job's model on one engine, driven by the offline scenario. Made right before the load:
    making it imports the engine's and the model's code, so that load_s does not carry imports."""

    # Whose queued work every timestamp waits for: the job's device type, or "cpu" where the engine's
    # calls return when done.
    clock_device: str
    loading: str  # how the load step names the engine: "bnb-nf4 on cuda:0", "llama.cpp, 8 threads"

    def load(self, samples: Sequence[Sample]) -> LoadedModel:
        """The weights into memory, ready to generate for `samples` (the batch every iteration
        generates for); timed as load_s, less the quantize_s in the result's metrics. An engine that
        sizes itself to the prompts (llama.cpp's context) tokenizes them here."""

    def prepare(self, samples: Sequence[Sample]) -> None:
        """The batch's inputs, built outside every timed region (nothing where `load` built them)."""

    def generate(self, max_new_tokens: int, first_token: FirstTokenClock) -> Generation:
        """Greedy generation of exactly max_new_tokens for every prompt of the batch (end of sequence
        never stops one). `first_token` marks when the first new token of every prompt exists (the
        end of the prefill): transformers calls it as a stopping criterion, another engine calls
        its `mark()`."""

    def facts(self, samples: list[IterationSample]) -> dict[str, Any]:
        """This engine's own columns, read after the timed iterations: the weights as it holds them
        (weight_memory_gb, bits_per_weight, kernel, activation_dtype, ...) and its own rates and build."""

    def quality(self, evaluate: Evaluate) -> dict[str, Any]:
        """The quality metrics, after every speed number and only when some are selected:
        `evaluate(scorer)` with this engine's scorer (None: the transformers model's), and the
        engine's own facts about the scoring."""

    def decode(self, generation: Generation) -> list[str]:
        """Texts of a generation, recorded as the job's sample outputs."""

    def close(self) -> None:
        """Release what the runner holds beside the loaded model (llama.cpp's contexts); called once
        the job's measurement ends, also when it fails."""
