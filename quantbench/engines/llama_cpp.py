"""The llama.cpp engine, offline: a GGUF file timed through llama-cpp-python, with the job life
cycle, result files and statistics of the transformers path.

One iteration is `batch` prompts (dataset samples 0..batch-1, as the transformers path takes them)
decoded together through llama.cpp's batch API (quantbench/gguf/decode.py): one prefill call, then
one call per step with a token for every sequence, greedy (argmax of llama.cpp's logits, end of
sequence never stops it), exactly bench.max_new_tokens tokens per prompt, so every engine generates
the same number of tokens. TTFT ends when every prompt's first token is picked; pp/tg tokens/s are
llama-bench's prompt-processing and generation rates, summed over the sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from quantbench.atomic import write_parquet_atomic
from quantbench.errors import JobSkipped
from quantbench.job_setup import prepare_job
from quantbench.jobdir import ITERATIONS_FILE
from quantbench.measure.instrumented import run_instrumented
from quantbench.measure.loop import IterationSample, speed_metrics
from quantbench.measure.memory import GB, MemoryTracker
from quantbench.measure.phases import startup_s, without_quantize_s
from quantbench.measure.timing import DeviceClock
from quantbench.quality import evaluate_quality, selected_metrics
from quantbench.threads import set_torch_threads

if TYPE_CHECKING:
    from quantbench.device import Device
    from quantbench.engines.base import ServerLaunch, ServerRequest
    from quantbench.progress import JobProgress

ENGINE = "llama.cpp"


def open_llama(path: Path, *, n_ctx: int, threads: int, logits_all: bool, seed: int, gpu: bool) -> Any:
    from llama_cpp import Llama

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
    )


def measure_llama_cpp(
    cfg: DictConfig, device: "Device", job_dir: Path, progress: "JobProgress"
) -> tuple[dict[str, Any], list[str]]:
    from quantbench.gguf.binding import build_info, import_binding
    from quantbench.gguf.decode import BatchDecoder, DecodeShape

    batch_size = int(cfg.batch)
    if batch_size < 1:
        raise JobSkipped(f"batch must be at least 1, got {batch_size}")
    setup = prepare_job(cfg, device, progress)
    family, dataset, spec = setup.family, setup.dataset, setup.spec
    # llama.cpp's threads and torch's (the fp32 reference of the quality metrics): hardware.threads.
    threads = set_torch_threads(cfg.hardware)

    clock = DeviceClock("cpu")  # llama.cpp's decode returns when its work is done, on any device
    memory = MemoryTracker(device.type, device.index)
    memory.reset()
    # load_s as every engine measures it (quantbench/measure/phases.py): llama-cpp-python and the
    # tokenizer's code imported first; a GGUF file made on a cache miss is quantize_s, not load_s.
    llama_cpp = import_binding()
    import transformers  # noqa: F401 - the tokenizer's library, imported before the load is timed

    phases = {"startup_s": startup_s(spec.materialise_s), "materialise_s": spec.materialise_s}
    load_started = clock.now()
    with progress.step(f"loading {cfg.model.name} as {cfg.precision.name} (llama.cpp, {threads} threads)"):
        loaded = setup.backend.load(setup.load_request(cfg, device))
        tokenizer = loaded.processor
        use_template = bool(cfg.dataset.chat_template) and bool(getattr(tokenizer, "chat_template", None))
        # The same prompts every iteration: each timed iteration does identical work.
        samples = [dataset[index % len(dataset)] for index in range(batch_size)]
        texts = family.prompt_texts(samples, tokenizer, bool(cfg.dataset.chat_template))
        prompts = [
            list(tokenizer(text, truncation=True, max_length=int(cfg.bench.max_input_tokens), add_special_tokens=not use_template)["input_ids"])
            for text in texts
        ]
        max_new_tokens = int(cfg.bench.max_new_tokens)
        shape = DecodeShape(n_seq=batch_size, prompt_tokens=max(map(len, prompts)), new_tokens=max_new_tokens)
        llm = open_llama(
            loaded.model.path, n_ctx=shape.tokens_per_seq, threads=threads, logits_all=False,
            seed=int(cfg.bench.seed), gpu=device.is_cuda,
        )
        decoder = BatchDecoder(llama_cpp, llm.model, shape, threads=threads)
    load_s = without_quantize_s(clock.now() - load_started, loaded.metrics)
    last_generated: list[list[int]] = []

    def step(iteration: int) -> IterationSample:
        first_tokens_at: list[float] = []
        started = clock.now()
        generated = decoder.generate(prompts, max_new_tokens, lambda: first_tokens_at.append(clock.now()))
        finished = clock.now()
        last_generated[:] = generated
        latency_ms = (finished - started) * 1e3
        ttft_ms = (first_tokens_at[0] - started) * 1e3
        return IterationSample(
            iteration=iteration,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            tpot_ms=(latency_ms - ttft_ms) / (max_new_tokens - 1) if max_new_tokens > 1 else None,
            n_generated_tokens=sum(map(len, generated)),
            n_input_tokens=sum(map(len, prompts)),
            batch=batch_size,
        )

    # Energy around every timed iteration, telemetry through the phases (quantbench/measure/instrumented.py).
    run, instruments = run_instrumented(step, cfg.bench, job_dir, device.type, device.index, progress.tick)
    import polars as pl

    write_parquet_atomic(job_dir / ITERATIONS_FILE, pl.DataFrame([vars(sample) for sample in run.samples]))
    metrics: dict[str, Any] = {
        **speed_metrics(run.samples),
        **instruments,
        **run.budget_metrics(),
        **engine_rates(run.samples),
        **memory.peaks(),
        # The weights in memory are the file's tensors (mapped from disk).
        "weight_memory_gb": loaded.model.path.stat().st_size / GB,
        "activation_dtype": "float32",  # llama.cpp's CPU activations; the KV cache is f16
        "load_s": load_s,
        **phases,
        "max_new_tokens": max_new_tokens,
        "engine": ENGINE,
        "threads": threads,
        **setup.hardware.metrics(),
        "model_note": cfg.model.note,
        **build_info(),
        **loaded.metrics,
    }
    decoder.close()
    del llm
    metrics.update(_quality(cfg, loaded, family, spec, device, job_dir, progress, threads))
    outputs = [tokenizer.decode(tokens, skip_special_tokens=True) for tokens in last_generated]
    return metrics, outputs


def engine_rates(samples: list[IterationSample]) -> dict[str, float | None]:
    """llama-bench's pp (prompt tokens per second of prefill) and tg (tokens per second generated after
    each sequence's first), over all sequences of an iteration; medians."""
    import numpy as np

    pp = [s.n_input_tokens / (s.ttft_ms / 1e3) for s in samples if s.ttft_ms]
    tg = [(s.n_generated_tokens - s.batch) / ((s.latency_ms - s.ttft_ms) / 1e3) for s in samples if s.ttft_ms and s.n_generated_tokens > s.batch]
    return {
        "prompt_tokens_per_s": float(np.median(pp)) if pp else None,
        "generation_tokens_per_s": float(np.median(tg)) if tg else None,
    }


def _quality(cfg: DictConfig, loaded: Any, family: Any, spec: Any, device: "Device", job_dir: Path, progress: "JobProgress", threads: int) -> dict[str, Any]:
    """Quality on llama.cpp's logits, on the windows and tokens every precision is scored on."""
    if not selected_metrics(cfg):
        return {}
    from quantbench.quality.llama_cpp_logits import LlamaCppScorer, scoring_context_tokens

    from quantbench.gguf.files import context_length

    n_ctx_train = context_length(loaded.model.path)
    n_ctx = scoring_context_tokens(cfg.quality, n_ctx_train)
    llm = open_llama(loaded.model.path, n_ctx=n_ctx, threads=threads, logits_all=True, seed=int(cfg.bench.seed), gpu=device.is_cuda)
    max_tokens = cfg.quality.get("max_tokens")
    scorer = LlamaCppScorer(llm, family, loaded.processor, n_ctx_train, None if max_tokens is None else int(max_tokens))
    metrics = evaluate_quality(cfg, loaded, family, spec, device, job_dir, progress, scorer=scorer)
    # Texts llama.cpp's tokenizer cuts differently into the same text (scored on the model's tokens all the same).
    return {**metrics, "gguf_texts_cut_differently": scorer.processor.texts_cut_differently}


# What llama-cpp-python[server] adds to the binding (its pyproject's `server` extra).
SERVER_PACKAGES = {"uvicorn": "uvicorn", "fastapi": "fastapi", "pydantic_settings": "pydantic-settings", "sse_starlette": "sse-starlette", "starlette_context": "starlette-context", "yaml": "PyYAML"}
SERVED_MODEL_NAME = "quantbench"  # --model_alias: what requests name as `model`
ONE_AT_A_TIME = (
    "llama-cpp-python's server runs one request at a time (one llama.cpp context behind a lock; no "
    "parallel slots or continuous batching): requests above concurrency 1 queue"
)


class LlamaCppEngine:
    """llama.cpp through llama-cpp-python. Offline: `measure_offline` (the scenario dispatch calls it
    instead of the transformers measurement). Serving: llama-cpp-python's OpenAI-compatible server
    (`python -m llama_cpp.server`) on the precision's GGUF file, which serves one request at a time."""

    name = ENGINE
    description = "llama.cpp (llama-cpp-python): GGUF files, offline and as llama-cpp-python's server"
    offline = True
    starts_server = True
    stream_usage = False  # the server ignores stream_options; tokens are counted with the tokenizer

    def measure_offline(self, cfg: DictConfig, device: "Device", job_dir: Path, progress: "JobProgress") -> tuple[dict[str, Any], list[str]]:
        return measure_llama_cpp(cfg, device, job_dir, progress)

    def unavailable_reason(self, engine: DictConfig) -> str | None:
        import importlib.util

        from quantbench.engines.server_command import configured_executable, missing_executable_reason
        from quantbench.gguf.binding import PINNED_VERSION, unavailable_reason

        if engine.get("prefix_caching") is not None:
            return "llama-cpp-python's server has no prefix-cache option; leave engine.prefix_caching null"
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        missing = [package for module, package in SERVER_PACKAGES.items() if importlib.util.find_spec(module) is None]
        if missing:
            return f"llama-cpp-python's server needs {', '.join(missing)} (pip install 'llama-cpp-python[server]=={PINNED_VERSION}')"
        return unavailable_reason()

    def unsupported_reason(self, precision: DictConfig, device: "Device") -> str | None:
        if precision.get("engine") != ENGINE:
            return f"llama.cpp serves GGUF files; precision '{precision.name}' is not a GGUF type (use gguf-q8_0, gguf-q4_k_m, ...)"
        return None

    def launch(self, request: "ServerRequest") -> "ServerLaunch":
        import sys

        from quantbench.engines.base import ServerLaunch
        from quantbench.engines.server_command import configured_executable

        command = [
            *(configured_executable(request.engine) or [sys.executable, "-m", "llama_cpp.server"]),
            "--model", request.weights,
            "--model_alias", SERVED_MODEL_NAME,
            "--host", request.host,
            "--port", str(request.port),
            "--n_ctx", "0",  # the model's own context length
            "--n_gpu_layers", "-1" if request.device.is_cuda else "0",
            "--seed", str(request.seed),
            # By default a new request ends the one streaming (it gets [DONE] early): with several
            # users every answer but the last would be cut short.
            "--interrupt_requests", "false",
        ]
        if request.threads is not None:
            command += ["--n_threads", str(request.threads), "--n_threads_batch", str(request.threads)]
        # engine=auto's config has no `args`: the engine's own command line.
        command += [str(argument) for argument in request.engine.get("args") or []]
        return ServerLaunch(
            command=command,
            health_path="/v1/models",  # no /health; this answers once the model is loaded
            model_name=SERVED_MODEL_NAME,
            prefix_caching="llama-cpp-python server default (no prefix-cache option)",
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        # min_tokens masks the end-of-sequence token until max_tokens tokens exist (the server's
        # MinTokensLogitsProcessor), so every request generates exactly max_tokens tokens.
        return {"min_tokens": max_tokens}

    def serving_facts(self) -> dict[str, Any]:
        """Recorded in every serving row of this engine."""
        return {"serves_one_request_at_a_time": True, "serving_note": ONE_AT_A_TIME}
