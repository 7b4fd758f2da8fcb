"""transformers offline: the precision's backend loads the model into quantbench's process, the
model's family builds the batch and runs `generate()` (quantbench/engines/offline.py's runner; the
offline scenario times it). engine.kv_cache_dtype (quanto-int4, hqq-int4, fp8, ...) gives generate()
transformers' quantized cache (`cache_implementation="quantized"`: QuantizedCache, the library's group
size and residual length); null keeps the model's own cache in its dtype."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from omegaconf import OmegaConf

from quantbench.engines.kv_cache_dtype import TRANSFORMERS_DEFAULT, QuantizedCache, transformers_cache
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
        # engine.kv_cache_dtype: transformers' quantized cache for generate(), None for the model's own.
        self.cache = transformers_cache(job.cfg.engine) if job.cfg.get("engine") is not None else None
        self.cache_facts: dict[str, Any] = {}

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
        if self.cache is not None:
            self.cache_facts = quantized_cache_facts(self.cache, self.loaded.model, str(cfg.engine.kv_cache_dtype))
            self.prepared.extra.setdefault("generate_kwargs", {}).update(self.cache.generate_kwargs())

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
            "kv_cache_dtype": f"{TRANSFORMERS_DEFAULT} dtype ({activation_dtype(model)})",
            "kv_cache_bytes_per_token": kv_cache_bytes_per_token(model),
            **self.cache_facts,  # a quantized cache's own type and bytes
            **self.prepared.extra.get("metrics", {}),  # family facts, e.g. image tokens per sample
        }

    def quality(self, evaluate: Evaluate) -> dict[str, Any]:
        if self.cache is None:
            return evaluate(None)  # quantbench's TokenScorer on the loaded model
        return self._quality_through_cache(evaluate)

    def _quality_through_cache(self, evaluate: Evaluate) -> dict[str, Any]:
        """A quantized cache: every score read through it in chunks (quality/cache_scorer.py) and, for
        perplexity and KL divergence, compared with the model's own cache on the same chunks and tokens
        (quality/cache_precision.py; that reference cached like the precisions')."""
        from transformers import DynamicCache

        from quantbench.quality.cache_precision import text_metrics_selected
        from quantbench.quality.cache_scorer import ChunkedCacheScorer
        from quantbench.quality.scoring import QualityUnavailable

        cfg, model, chunk = self.job.cfg, self.loaded.model, int(self.cache_facts["kv_cache_residual_tokens"] or 128)

        def scorer(make_cache: Any) -> ChunkedCacheScorer:
            return ChunkedCacheScorer(
                self.job.family, model, self.loaded.processor, self.job.device.torch_device, make_cache, chunk
            )

        try:
            quantized = scorer(lambda: self.cache.make(model.config))
            own_cache = scorer(lambda: DynamicCache(config=model.config.get_text_config(decoder=True)))
            observers = [self._cache_comparison(own_cache, chunk)] if text_metrics_selected(cfg.quality) else []
        except QualityUnavailable as reason:
            return {"quality_skipped": f"engine.kv_cache_dtype={cfg.engine.kv_cache_dtype}: {reason}"}
        return {**evaluate(quantized, observers=observers), "kv_cache_chunk_tokens": chunk}

    def _cache_comparison(self, reference_scorer: Any, chunk: int) -> Any:
        from quantbench.cache import cache_root, stable_hash
        from quantbench.quality import cache_precision
        from quantbench.quality.reference import load_reference, save_reference
        from quantbench.quality.scoring import text_tokenizer
        from quantbench.quality.text import compute_reference, evaluation_windows, windows_meta

        cfg, spec = self.job.cfg, self.job.request.model
        top_k = cache_precision.reference_top_k(cfg.quality)
        windows = evaluation_windows(cfg.quality, text_tokenizer(self.loaded.processor))
        precision = OmegaConf.to_container(cfg.precision, resolve=True)
        key = stable_hash(
            [cache_precision.KV_REFERENCE_VERSION, spec.fingerprint, precision, windows.digest(), top_k, chunk]
        )
        entry = cache_root(cfg.cache_dir) / "reference" / f"{spec.name}-{cfg.precision.name}-kv-model-{key}"
        reference = load_reference(entry, "cpu", windows.n_scored)
        if reference is None:
            reference = compute_reference(reference_scorer, windows, top_k)
            meta = {"model": spec.name, "precision": precision, "chunk_tokens": chunk, "top_k": top_k}
            save_reference(entry, reference, {**meta, **windows_meta(windows)})
        label = f"the model's own cache ({activation_dtype(self.loaded.model)}), the same {chunk}-token chunks"
        return cache_precision.CacheComparison(reference, windows.digest(), label)

    def decode(self, generation: Generation) -> list[str]:
        return self.job.family.decode(self.loaded.processor, generation.tokens)[:SAMPLE_OUTPUTS]

    def close(self) -> None:
        """Nothing beside the loaded model, which the job releases (quantbench.measure.memory.release_memory)."""


def quantized_cache_facts(cache: QuantizedCache, model: Any, name: str) -> dict[str, Any]:
    """The quantized cache made as generate() makes it (a layer of transformers' QuantizedCache for this
    model), its storage measured (quantbench/measure/kv_cache.py); JobSkipped where the library refuses
    the model or lacks its backend's package."""
    from quantbench.errors import JobSkipped
    from quantbench.measure.kv_cache import kv_shape_from_config, quantized_cache_bytes_per_value

    if getattr(model.config, "is_encoder_decoder", False):
        raise JobSkipped(f"transformers' quantized cache (engine.kv_cache_dtype={name}) is for decoder-only models")
    try:
        layer = cache.make(model.config).layers[0]
    except ImportError as error:  # quanto or hqq missing: transformers' own words say which to install
        raise JobSkipped(f"engine.kv_cache_dtype={name}: {error}") from None
    except ValueError as error:  # e.g. sliding-window layers, which QuantizedCache refuses
        raise JobSkipped(
            f"engine.kv_cache_dtype={name}: transformers' QuantizedCache refuses this model: {error}"
        ) from None
    shape = kv_shape_from_config(model.config)
    value_bytes = quantized_cache_bytes_per_value(layer, shape, model.dtype) if shape is not None else None
    return {
        "kv_cache_dtype": name,
        # tokens beyond the newest residual_length, which stay in the model's dtype
        "kv_cache_bytes_per_token": None if value_bytes is None else shape.bytes_per_token(value_bytes),
        "kv_cache_group_size": getattr(layer, "q_group_size", None),
        "kv_cache_residual_tokens": getattr(layer, "residual_length", None),
    }
