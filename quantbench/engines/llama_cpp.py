"""The llama.cpp engine: a GGUF file through llama-cpp-python offline, in quantbench's process; served
by llama.cpp's own llama-server (quantbench/engines/llama_server.py).

Offline, `LlamaCppRunner` is the engine's part of the offline scenario (quantbench/scenarios/offline.py,
which times it like every engine): one iteration is `batch` prompts (dataset samples 0..batch-1, as
every engine takes them) decoded together through llama.cpp's batch API (quantbench/gguf/decode.py):
one prefill call, then one call per step with a token for every sequence, greedy (argmax of
llama.cpp's logits, end of sequence never stops it), exactly bench.max_new_tokens tokens per prompt,
so every engine generates the same number of tokens. TTFT ends when every prompt's first token is
picked; pp/tg tokens/s are llama-bench's prompt-processing and generation rates, summed over the
sequences.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantbench.engines.kv_cache_dtype import ggml_type_id, llama_cpp_facts, llama_cpp_type
from quantbench.engines.llama_server import LlamaServer
from quantbench.engines.offline import Evaluate, Generation, OfflineJob
from quantbench.measure.loop import IterationSample
from quantbench.measure.memory import GB

if TYPE_CHECKING:
    from quantbench.backends.base import LoadedModel
    from quantbench.data.base import Sample
    from quantbench.measure.timing import FirstTokenClock

ENGINE = "llama.cpp"
log = logging.getLogger("quantbench")


def open_llama(
    path: Path, *, n_ctx: int, threads: int, logits_all: bool, seed: int, gpu: bool, cache_type: str | None = None
) -> Any:
    """A `Llama` on the file; `cache_type` (a ggml type name: engine.kv_cache_dtype) sets its K and V
    cache with flash attention on, None keeps llama-cpp-python's defaults (f16, flash attention off)."""
    from llama_cpp import Llama

    cache: dict[str, Any] = {}
    if cache_type is not None:
        type_id = ggml_type_id(cache_type)
        cache = {"type_k": type_id, "type_v": type_id, "flash_attn": True}
    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_ctx,  # a prompt is one decode call, as transformers' prefill is one forward pass
        n_ubatch=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=-1 if gpu else 0,
        logits_all=logits_all,
        seed=seed,
        verbose=False,
        **cache,
    )


class LlamaCppRunner:
    """A GGUF file opened by llama-cpp-python with the job's threads, its prompts decoded together."""

    clock_device = "cpu"  # llama.cpp's decode returns when its work is done, on any device

    def __init__(self, job: OfflineJob):
        from quantbench.gguf.binding import import_binding

        # load_s as every engine measures it (quantbench/measure/phases.py): llama-cpp-python and the
        # tokenizer's code imported first; a GGUF file made on a cache miss is quantize_s, not load_s.
        self.llama_cpp = import_binding()
        import transformers  # noqa: F401 - the tokenizer's library, imported before the load is timed

        self.job = job
        # engine.kv_cache_dtype: the K and V cache's ggml type (None: llama.cpp's f16); JobSkipped if unknown.
        self.cache_type = llama_cpp_type(job.cfg.engine) if job.cfg.get("engine") is not None else None
        # llama.cpp's threads and torch's (the fp32 reference of the quality metrics): hardware.threads.
        self.loading = f"llama.cpp, {job.threads} threads"
        self.loaded: LoadedModel | None = None
        self.weights: Any = None
        self.decoder: Any = None
        self.prompts: list[list[int]] = []
        self.n_input_tokens = 0

    def load(self, samples: Sequence[Sample]) -> LoadedModel:
        """The file (made on a cache miss), the prompts tokenized and a context sized to them."""
        from quantbench.gguf.decode import BatchDecoder, DecodeShape, GgufModel

        cfg, job = self.job.cfg, self.job
        self.loaded = job.backend.load(job.request)
        tokenizer = self.loaded.processor
        use_template = bool(cfg.dataset.chat_template) and bool(getattr(tokenizer, "chat_template", None))
        texts = job.family.prompt_texts(samples, tokenizer, bool(cfg.dataset.chat_template))
        self.prompts = [
            list(
                tokenizer(
                    text,
                    truncation=True,
                    max_length=int(cfg.bench.max_input_tokens),
                    add_special_tokens=not use_template,
                )["input_ids"]
            )
            for text in texts
        ]
        self.n_input_tokens = sum(map(len, self.prompts))
        shape = DecodeShape(
            n_seq=len(self.prompts), prompt_tokens=max(map(len, self.prompts)), new_tokens=int(cfg.bench.max_new_tokens)
        )
        # The weights alone: the decoder makes the only context (and KV cache) the timed steps use.
        self.weights = GgufModel(self.llama_cpp, self.loaded.model.path, gpu=job.device.is_cuda)
        self.decoder = BatchDecoder(
            self.llama_cpp,
            self.weights.pointer,
            shape,
            threads=job.threads,
            cache_type=None if self.cache_type is None else ggml_type_id(self.cache_type),
        )
        return self.loaded

    def prepare(self, samples: Sequence[Sample]) -> None:
        """Nothing: the prompts were tokenized in `load`, which sizes the context to them."""

    def generate(self, max_new_tokens: int, first_token: FirstTokenClock) -> Generation:
        generated = self.decoder.generate(self.prompts, max_new_tokens, first_token.mark)
        return Generation(
            tokens=generated,
            n_input_tokens=self.n_input_tokens,
            n_generated_tokens=sum(map(len, generated)),
            new_tokens_per_prompt=max_new_tokens,
        )

    def facts(self, samples: list[IterationSample]) -> dict[str, Any]:
        from quantbench.gguf.binding import build_info
        from quantbench.gguf.files import kv_shape

        path = self.loaded.model.path
        return {
            **engine_rates(samples),
            # The weights in memory are the file's tensors (mapped from disk).
            "weight_memory_gb": path.stat().st_size / GB,
            "activation_dtype": "float32",  # llama.cpp's CPU activations; the KV cache's type is below
            # kv_cache_dtype, kv_cache_bytes_per_token (the file's layers and heads), flash_attn
            **llama_cpp_facts(self.cache_type, kv_shape(path)),
            **build_info(),
        }

    def quality(self, evaluate: Evaluate) -> dict[str, Any]:
        """Quality on llama.cpp's logits, on the windows and tokens every precision is scored on; with a
        KV cache type other than f16, also against an f16 cache of the same file (quality/cache_precision.py)."""
        from quantbench.gguf.files import context_length
        from quantbench.quality.cache_precision import compares_cache
        from quantbench.quality.llama_cpp_logits import scoring_context_tokens

        self.close()  # the timed context's memory back before the scoring context opens
        cfg, path = self.job.cfg, self.loaded.model.path
        n_ctx_train = context_length(path)
        n_ctx = scoring_context_tokens(cfg.quality, n_ctx_train)
        observers = []
        if compares_cache(self.cache_type, cfg.quality):
            observers.append(self._cache_comparison(n_ctx, n_ctx_train))
        scorer = self._scorer(self._open(n_ctx, self.cache_type), n_ctx_train)
        metrics = evaluate(scorer, observers=observers)
        # Texts llama.cpp's tokenizer cuts differently into the same text (scored on the model's tokens all the same).
        return {**metrics, "gguf_texts_cut_differently": scorer.processor.texts_cut_differently}

    def _open(self, n_ctx: int, cache_type: str | None) -> Any:
        return open_llama(
            self.loaded.model.path,
            n_ctx=n_ctx,
            threads=self.job.threads,
            logits_all=True,
            seed=int(self.job.cfg.bench.seed),
            gpu=self.job.device.is_cuda,
            cache_type=cache_type,
        )

    def _scorer(self, llm: Any, n_ctx_train: int) -> Any:
        from quantbench.quality.llama_cpp_logits import LlamaCppScorer

        max_tokens = self.job.cfg.quality.get("max_tokens")
        return LlamaCppScorer(
            llm, self.job.family, self.loaded.processor, n_ctx_train, None if max_tokens is None else int(max_tokens)
        )

    def _cache_comparison(self, n_ctx: int, n_ctx_train: int) -> Any:
        """The f16 cache's distributions on the job's windows (cached; computed here on a miss, with an
        f16 context that is closed before the job's own opens), as the observer of the job's pass."""
        from quantbench.cache import cache_root
        from quantbench.gguf.binding import binding_version
        from quantbench.quality import cache_precision
        from quantbench.quality.reference import load_reference, save_reference
        from quantbench.quality.scoring import text_tokenizer
        from quantbench.quality.text import compute_reference, evaluation_windows

        cfg, path = self.job.cfg, self.loaded.model.path
        top_k = cache_precision.reference_top_k(cfg.quality)
        reference_llm = self._open(n_ctx, cache_precision.REFERENCE_CACHE_TYPE)
        try:
            scorer = self._scorer(reference_llm, n_ctx_train)
            windows = evaluation_windows(cfg.quality, text_tokenizer(scorer.processor))
            version = binding_version()
            entry = cache_precision.reference_entry(cache_root(cfg.cache_dir), path, windows, top_k, version)
            reference = load_reference(entry, "cpu", windows.n_scored)
            if reference is None:
                log.info("computing the f16 KV cache's distributions of %s (once; cached in %s)", path, entry)
                reference = compute_reference(scorer, windows, top_k)
                save_reference(entry, reference, cache_precision.reference_meta(path, windows, top_k, version))
        finally:
            reference_llm.close()
        return cache_precision.CacheComparison(reference, windows.digest(), cache_precision.LLAMA_CPP_REFERENCE)

    def decode(self, generation: Generation) -> list[str]:
        return [self.loaded.processor.decode(tokens, skip_special_tokens=True) for tokens in generation.tokens]

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        if self.weights is not None:
            self.weights.close()
        self.decoder = self.weights = None


def engine_rates(samples: list[IterationSample]) -> dict[str, float | None]:
    """llama-bench's pp (prompt tokens per second of prefill) and tg (tokens per second generated after
    each sequence's first), over all sequences of an iteration; medians."""
    import numpy as np

    pp = [s.n_input_tokens / (s.ttft_ms / 1e3) for s in samples if s.ttft_ms]
    tg = [
        (s.n_generated_tokens - s.batch) / ((s.latency_ms - s.ttft_ms) / 1e3)
        for s in samples
        if s.ttft_ms and s.n_generated_tokens > s.batch
    ]
    return {
        "prompt_tokens_per_s": float(np.median(pp)) if pp else None,
        "generation_tokens_per_s": float(np.median(tg)) if tg else None,
    }


class LlamaCppEngine(LlamaServer):
    """llama.cpp. Offline: a GGUF file through llama-cpp-python, `LlamaCppRunner`, driven by the offline
    scenario like every engine's runner. Serving: llama.cpp's own llama-server
    (quantbench/engines/llama_server.py; llama-cpp-python's server is engine=llama-cpp-python)."""

    name = ENGINE
    description = "llama.cpp: GGUF files, offline through llama-cpp-python and served by llama-server"
    offline = True
    starts_server = True

    def offline_runner(self, job: OfflineJob) -> LlamaCppRunner:
        return LlamaCppRunner(job)
