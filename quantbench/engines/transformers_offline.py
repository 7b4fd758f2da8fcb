"""transformers offline: the precision's backend loads the model into quantbench's process, the
model's family builds the batch and runs `generate()` (quantbench/engines/offline.py's runner; the
offline scenario times it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from quantbench.engines.offline import Evaluate, Generation, OfflineJob
from quantbench.measure.kv_cache import activation_dtype, kv_cache_bytes_per_token
from quantbench.measure.phases import import_model_code
from quantbench.measure.weight_facts import weight_metrics

if TYPE_CHECKING:
    from quantbench.backends.base import LoadedModel
    from quantbench.data.base import Sample
    from quantbench.families.base import PreparedBatch
    from quantbench.measure.loop import IterationSample
    from quantbench.measure.timing import FirstTokenClock

SAMPLE_OUTPUTS = 4  # generated texts recorded with the result


class TransformersRunner:
    def __init__(self, job: OfflineJob):
        import torch

        torch.manual_seed(int(job.cfg.bench.seed))
        # The model's own modelling code imported before the load is timed (quantbench/measure/phases.py).
        import_model_code(job.request.model)
        self.job = job
        self.clock_device = job.device.type
        self.loading = f"{job.backend.name} on {job.device.torch_device}"
        self.loaded: LoadedModel | None = None
        self.prepared: PreparedBatch | None = None

    def load(self, samples: Sequence[Sample]) -> LoadedModel:
        self.loaded = self.job.backend.load(self.job.request)
        return self.loaded

    def prepare(self, samples: Sequence[Sample]) -> None:
        cfg = self.job.cfg
        self.prepared = self.job.family.prepare_batch(
            samples,
            self.loaded.processor,
            device=self.job.device.torch_device,
            max_input_tokens=int(cfg.bench.max_input_tokens),
            chat_template=bool(cfg.dataset.chat_template),
        )

    def generate(self, max_new_tokens: int, first_token: FirstTokenClock) -> Generation:
        generated = self.job.family.generate(
            self.loaded.model, self.prepared, max_new_tokens=max_new_tokens, clock=first_token
        )
        return Generation(
            tokens=generated,
            n_input_tokens=self.prepared.n_input_tokens,
            n_generated_tokens=generated.n_generated_tokens,
            new_tokens_per_prompt=generated.new_tokens.shape[1],
        )

    def facts(self, samples: list[IterationSample]) -> dict[str, Any]:
        model = self.loaded.model
        return {
            # weight_memory_gb, bits_per_weight, kernel: measured from the model, or the backend's
            # own figure where it reports one (gptqmodel's kernel pick); null, with a warning, where
            # quantbench cannot see a layer's weight (quantbench/measure/weight_facts.py).
            **weight_metrics(model, self.loaded.metrics),
            # What the roofline needs, read from the model as loaded (quantbench/measure/kv_cache.py).
            "activation_dtype": activation_dtype(model),
            "kv_cache_bytes_per_token": kv_cache_bytes_per_token(model),
            **self.prepared.extra.get("metrics", {}),  # family facts, e.g. image tokens per sample
        }

    def quality(self, evaluate: Evaluate) -> dict[str, Any]:
        return evaluate(None)  # quantbench's TokenScorer on the loaded model

    def decode(self, generation: Generation) -> list[str]:
        return self.job.family.decode(self.loaded.processor, generation.tokens)[:SAMPLE_OUTPUTS]

    def close(self) -> None:
        """Nothing beside the loaded model, which the job releases (quantbench.measure.memory.release_memory)."""
