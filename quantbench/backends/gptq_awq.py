"""GPTQ and AWQ through gptqmodel: quantize once from the full-precision model, cache, load.

A job asks for `precision=gptq` (or awq). The backend checks, from configs alone, that the method
can take this model (family, model type, bit width, group size against every layer's width), then
looks the checkpoint up in `<cache_dir>/quantized/`. On a miss a child process quantizes it into a
temporary directory that is renamed into place when complete; on a hit nothing is quantized. The
job always loads the cached checkpoint, so a first and a later job measure the same thing.

A model config with `prequantized: gptq|awq` points at a checkpoint that is already quantized
(hub id or local directory): it is loaded as it is.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.backends.base import LoadedModel, LoadRequest, missing_package_reason
from quantbench.backends.checkpoint_cache import CheckpointRecipe, checkpoint_bytes
from quantbench.backends.gptqmodel_env import (
    announce_compilation,
    engine_version,
    gptqmodel_environment,
    import_gptqmodel,
)
from quantbench.backends.group_size import check_group_size, quantized_input_widths, resolve_group_size
from quantbench.cache import atomic_directory, entry_path, is_usable, read_manifest, write_manifest
from quantbench.errors import JobSkipped
from quantbench.runtime.progress import job_step

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

log = logging.getLogger("quantbench")

SUPPORTED_FAMILY = "decoder"
# gptqmodel's generic reference kernels: correct everywhere, fast nowhere. A job that ends up on one
# says so in its log; the `kernel` column says so in the summary.
GENERIC_KERNELS = ("TorchLinear", "AwqTorchLinear")
DTYPES = ("auto", "float16", "bfloat16", "float32")


def transformers_config(spec: ModelSpec) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(
        spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
    )


def quantized_with(config: Any) -> str | None:
    """The method a checkpoint's own config says its weights are quantized with, if any."""
    quantization = getattr(config, "quantization_config", None)
    if quantization is None:
        return None
    method = (
        quantization.get("quant_method")
        if isinstance(quantization, dict)
        else getattr(quantization, "quant_method", None)
    )
    return None if method is None else str(getattr(method, "value", method)).lower()


def prequantized_method(spec: ModelSpec) -> str | None:
    method = spec.config.get("prequantized")
    return None if method is None else str(method).lower()


class CalibratedBackend:
    """What GPTQ, AWQ and AutoRound share; subclasses name the method, its knobs and its engine."""

    method = "gptq"
    name = "gptq"
    description = ""
    supported_bits: tuple[int, ...] = (4,)
    engine = "gptqmodel"  # the library that quantizes and runs the checkpoint
    # The child process that quantizes (`python -m <module> REQUEST.json`, see gptqmodel_quantize).
    quantize_module = "quantbench.backends.gptqmodel_quantize"

    # ---- the engine: what a subclass with another library replaces ---------------------------
    def prepare_engine(self) -> None:
        """Import the engine before it is used."""
        import_gptqmodel()

    def announce_quantization(self) -> None:
        """Say, before the child starts, what makes a first quantization slow on this machine."""
        announce_compilation()

    def engine_version(self) -> str:
        return engine_version()

    def engine_environment(self) -> dict[str, str]:
        """Environment variables for the quantizing child."""
        return gptqmodel_environment()

    # ---- cheap checks, before anything heavy -------------------------------------------------
    def unavailable_reason(self, device: Device) -> str | None:
        return missing_package_reason("gptqmodel")

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        if family.name != SUPPORTED_FAMILY:
            return (
                f"{self.name} (gptqmodel) quantizes decoder-only language models; family '{family.name}' is not "
                "one (gptqmodel would build it as a causal LM and fail)"
            )
        if model is None:
            return None
        prequantized = prequantized_method(model)
        if prequantized is not None and prequantized != self.method:
            return f"model '{model.name}' is a {prequantized} checkpoint; run it with precision={prequantized}"
        config = transformers_config(model)
        already = quantized_with(config)
        if prequantized is None and already is not None:
            return (
                f"model '{model.name}' is already quantized ({already}); set model.prequantized={already} to load it "
                "as it is, or point the model at full-precision weights"
            )
        model_type = str(config.model_type)
        import_gptqmodel()
        from gptqmodel.models.auto import SUPPORTED_MODELS

        if model_type not in SUPPORTED_MODELS:
            return (
                f"gptqmodel {engine_version()} has no definition for model type '{model_type}' (model "
                f"'{model.name}'); it supports e.g. llama, mistral, qwen2, phi, gemma"
            )
        return None

    # ---- load ------------------------------------------------------------------------------------
    def load(self, request: LoadRequest) -> LoadedModel:
        self.prepare_engine()
        precision = request.precision
        dtype = str(precision.get("dtype", "auto"))
        if dtype not in DTYPES:
            raise ValueError(f"unknown precision.dtype '{dtype}'; choose one of: {', '.join(DTYPES)}")
        if prequantized_method(request.model) is not None:
            return self._load_prequantized(request, dtype)
        recipe = self.recipe(request)
        entry = entry_path(request.cache_dir, recipe)
        metrics: dict[str, Any] = {"quantize_s": 0.0, "cache_hit": True, "quantize_peak_memory_gb": None}
        if not is_usable(entry):
            metrics.update(self._build(request, recipe, entry), cache_hit=False)
        else:
            log.info("%s checkpoint found in the cache: %s", self.name, entry)
        manifest = read_manifest(entry)
        model, kernel = self._load_cached(str(entry), request.device, dtype)
        processor = request.family.load_processor(
            request.model.load_path,
            revision=request.model.revision,
            trust_remote_code=request.model.config.trust_remote_code,
        )
        metrics.update(
            {
                "checkpoint_size_gb": checkpoint_bytes(entry) / 1e9,
                "kernel": kernel,
                "compute_dtype": str(model.dtype).removeprefix("torch."),
                "bits": recipe.bits,
                "group_size": recipe.group_size,
                "prequantized": False,
                "calibration_windows": manifest.get("built", {}).get("calibration_windows"),
                "calibration_tokens": manifest.get("built", {}).get("calibration_tokens"),
                "checkpoint": entry.name,
            }
        )
        return LoadedModel(model=model, processor=processor, metrics=metrics)

    def knobs(self, precision: DictConfig) -> dict[str, Any]:
        return {"sym": bool(precision.sym)}

    def recipe(self, request: LoadRequest) -> CheckpointRecipe:
        """Validate the settings against the model (JobSkipped when they cannot work) and key them."""
        from quantbench.backends.calibration import calibration_source

        spec, precision = request.model, request.precision
        bits = int(precision.bits)
        if bits not in self.supported_bits:
            raise JobSkipped(
                f"{self.name} supports {', '.join(map(str, self.supported_bits))}-bit weights, not {bits}; "
                "set precision.bits to one of those"
            )
        group_size = resolve_group_size(precision.group_size, spec.config.get("quant_group_size"))
        config = transformers_config(spec)
        widths = quantized_input_widths(config, trust_remote_code=bool(spec.config.trust_remote_code))
        check_group_size(group_size, widths, spec.name, self.engine)
        calibration = precision.calibration
        return CheckpointRecipe(
            model_name=spec.name,
            model_fingerprint=spec.fingerprint,
            revision=spec.revision,
            method=self.method,
            bits=bits,
            group_size=group_size,
            knobs=self.knobs(precision),
            calibration={
                "source": calibration_source(calibration),
                "n_samples": int(calibration.n_samples),
                "seq_len": int(calibration.seq_len),
                "seed": int(calibration.seed),
            },
            engine_version=self.engine_version(),
            engine=self.engine,
        )

    # ---- quantize once ---------------------------------------------------------------------------
    def _build(self, request: LoadRequest, recipe: CheckpointRecipe, entry: Path) -> dict[str, Any]:
        from quantbench.backends.calibration import calibration_texts, calibration_windows
        from quantbench.backends.gptqmodel_quantize import run_quantization, scratch_directory

        spec = request.model
        tokenizer = request.family.load_processor(
            spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
        )
        calibration = recipe.calibration
        started = time.perf_counter()
        windows = calibration_windows(
            calibration_texts(calibration["source"]),
            tokenizer,
            calibration["n_samples"],
            calibration["seq_len"],
            calibration["seed"],
        )
        n_tokens = sum(map(len, windows))
        entry = entry.resolve()  # the child runs in the scratch directory: every path it gets is absolute
        with (
            scratch_directory(request.cache_dir.resolve(), entry.name) as scratch,
            atomic_directory(entry) as directory,
        ):
            log.info(
                "%s-quantizing '%s' to %d bits, group size %d, on %d calibration windows (%d tokens) on %s: "
                "once, later jobs reuse %s (log: %s)",
                self.method.upper(),
                spec.name,
                recipe.bits,
                recipe.group_size,
                len(windows),
                n_tokens,
                request.device.torch_device,
                entry,
                scratch / "quantize.log",
            )
            self.announce_quantization()
            (scratch / "calibration.json").write_text(json.dumps(windows))
            request_data = {
                "method": self.method,
                # absolute: the child runs in the scratch directory (a hub id stays as it is)
                "source": str(Path(spec.load_path).resolve()) if spec.is_local else spec.load_path,
                "revision": spec.revision,
                "trust_remote_code": bool(spec.config.trust_remote_code),
                "bits": recipe.bits,
                "group_size": recipe.group_size,
                "knobs": recipe.knobs,
                "seed": calibration["seed"],
                "device": request.device.torch_device,
                "calibration_file": str(scratch / "calibration.json"),
                "offload_dir": str(scratch / "offload"),
                "output_dir": str(directory),
                "result_file": str(scratch / "quantize_result.json"),
            }
            with job_step(f"{self.method.upper()}-quantizing '{spec.name}' ({self.engine}, in a child process)"):
                result = run_quantization(
                    request_data, scratch, self.engine_environment(), self.quantize_module, self.engine
                )
            # What producing the checkpoint costs the person waiting: calibration text, the child's
            # start-up, loading the full-precision model, calibrating, quantizing and saving.
            quantize_s = time.perf_counter() - started
            shutil.copy(scratch / "quantize.log", directory / "quantize.log")
            peak = result["peak_allocated_gb"] if request.device.is_cuda else result["peak_rss_gb"]
            built = {
                "quantize_s": quantize_s,
                "engine_s": result["quantize_s"],  # the child's load + quantize + save alone
                "quantize_peak_memory_gb": peak,
                "calibration_windows": len(windows),
                "calibration_tokens": n_tokens,
                "device": request.device.name,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            write_manifest(directory, recipe, built)  # last: a manifest means a complete checkpoint
        log.info(
            "%s checkpoint written in %.1f s (%s itself: %.1f s): %s",
            self.name,
            quantize_s,
            self.engine,
            result["quantize_s"],
            entry,
        )
        return {"quantize_s": quantize_s, "quantize_peak_memory_gb": peak}

    # ---- inference -------------------------------------------------------------------------------
    def _load_cached(self, path: str, device: Device, dtype: str) -> tuple[Any, str]:
        """The loaded model of a checkpoint in the cache, and the name of the kernel it runs on."""
        wrapper, kernel = self._load_checkpoint(path, device, dtype)
        return wrapper.model, kernel

    def _load_checkpoint(self, path: str, device: Device, dtype: str, **kwargs: Any) -> tuple[Any, str]:
        """gptqmodel's wrapper around the loaded transformers model (`.model`, `.quantize_config`,
        `.model_local_path`) and the name of the kernel it chose."""
        import torch
        from gptqmodel import GPTQModel
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear

        announce_compilation()
        if dtype != "auto":
            kwargs["dtype"] = getattr(torch, dtype)
        wrapper = GPTQModel.load(path, device=device.torch_device, **kwargs)
        model = wrapper.model
        model.eval()
        kernels = sorted({type(module).__name__ for module in model.modules() if isinstance(module, BaseQuantLinear)})
        kernel = "+".join(kernels) or "none"
        generic = [name for name in kernels if name in GENERIC_KERNELS]
        if generic:
            log.warning(
                "gptqmodel runs this checkpoint on its generic %s kernel (no faster kernel for these settings on %s): "
                "speed numbers describe that kernel",
                generic[0],
                device.torch_device,
            )
        return wrapper, kernel

    def _load_prequantized(self, request: LoadRequest, dtype: str) -> LoadedModel:
        spec = request.model
        kwargs: dict[str, Any] = {"trust_remote_code": spec.config.trust_remote_code}
        if spec.revision:
            kwargs["revision"] = spec.revision
        log.info("loading the %s checkpoint '%s' as it is (prequantized: no calibration)", self.method, spec.load_path)
        wrapper, kernel = self._load_checkpoint(spec.load_path, request.device, dtype, **kwargs)
        model, quantize_config = wrapper.model, wrapper.quantize_config
        local = Path(wrapper.model_local_path) if getattr(wrapper, "model_local_path", None) else None
        processor = request.family.load_processor(
            spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
        )
        return LoadedModel(
            model=model,
            processor=processor,
            metrics={
                "quantize_s": 0.0,
                "cache_hit": False,
                "quantize_peak_memory_gb": None,
                "checkpoint_size_gb": checkpoint_bytes(local) / 1e9 if local and local.is_dir() else None,
                "kernel": kernel,
                "compute_dtype": str(model.dtype).removeprefix("torch."),
                "bits": int(quantize_config.bits),
                "group_size": int(quantize_config.group_size),
                "prequantized": True,
                "calibration_windows": None,
                "calibration_tokens": None,
                "checkpoint": spec.load_path,
            },
        )


class GptqBackend(CalibratedBackend):
    method = "gptq"
    name = "gptq"
    description = "GPTQ weight-only quantization (gptqmodel), calibrated once and cached"
    supported_bits = (2, 3, 4, 8)

    def knobs(self, precision: DictConfig) -> dict[str, Any]:
        return {
            "sym": bool(precision.sym),
            "desc_act": bool(precision.desc_act),
            "damp_percent": None if precision.damp_percent is None else float(precision.damp_percent),
        }


class AwqBackend(CalibratedBackend):
    method = "awq"
    name = "awq"
    description = "AWQ activation-aware 4-bit weight quantization (gptqmodel), calibrated once and cached"
    supported_bits = (4,)
