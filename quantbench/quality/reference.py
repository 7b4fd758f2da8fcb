"""The reference precision's next-token distributions, computed once and cached on disk.

Key: the model's weights (fingerprint), the exact evaluation tokens and windows (their digest
covers the text, the tokenizer, the window settings and the limits), the reference precision's
resolved config, k and the device type. Entry: `<cache_dir>/reference/<model>-<key>/` holding
`reference.safetensors` (top-k indices and log-probs, remaining mass, and the log-probability of
each scored token's correct next token, which the paired statistics need) and `reference.json`
(what it was computed from), written atomically so a sweep's jobs can share it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from quantbench.cache import atomic_directory, is_complete, stable_hash
from quantbench.quality.fidelity import ReferenceDistribution
from quantbench.quality.scoring import QualityUnavailable

if TYPE_CHECKING:
    from quantbench.backends.base import LoadedModel
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

log = logging.getLogger("quantbench")

TENSORS_FILE = "reference.safetensors"
META_FILE = "reference.json"
# Bump when the stored form or the way it is computed changes, so old entries are not reused.
# 2: the log-probability of the correct next token is stored too (paired perplexity ratio, delta p).
REFERENCE_VERSION = 2


def reference_precision_name(setting: str, device: Device) -> str:
    """auto: fp32 on CPU, bf16 on GPU (fp32 costs twice the memory there for no useful accuracy)."""
    if setting == "auto":
        return "bf16" if device.is_cuda else "fp32"
    return setting


def compose_precision(name: str) -> DictConfig:
    """The `precision=<name>` config node as the app composes it (plugins' options included)."""
    from hydra.errors import HydraException

    from quantbench.config.compose import compose_option

    try:
        return compose_option("precision", name)
    except HydraException as error:
        raise QualityUnavailable(
            f"reference precision '{name}' is not a precision option ({error}); set quality.kld.reference"
        ) from None


def reference_entry(
    cache_dir: Path, spec: ModelSpec, windows_digest: str, precision: DictConfig, top_k: int, device: Device
) -> Path:
    key = stable_hash(
        [
            REFERENCE_VERSION,
            spec.fingerprint,
            windows_digest,
            OmegaConf.to_container(precision, resolve=True),
            top_k,
            device.type,
        ]
    )
    return cache_dir / "reference" / f"{spec.name}-{precision.name}-{key}"


def load_reference(entry: Path, device: str, n_tokens: int) -> ReferenceDistribution | None:
    if not is_complete(entry) or not (entry / TENSORS_FILE).is_file():
        return None
    from safetensors.torch import load_file

    tensors = load_file(entry / TENSORS_FILE, device=device)
    if "target_log_prob" not in tensors:
        log.warning("reference %s predates the stored target log-probabilities; computing it again", entry)
        return None
    reference = ReferenceDistribution(
        tensors["top_indices"].long(), tensors["top_log_probs"], tensors["rest_log_prob"], tensors["target_log_prob"]
    )
    if reference.n_tokens != n_tokens:
        log.warning("reference %s has %d tokens, expected %d; computing it again", entry, reference.n_tokens, n_tokens)
        return None
    return reference


def save_reference(entry: Path, reference: ReferenceDistribution, meta: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save_file

    from quantbench.atomic import write_json_atomic

    tensors = {
        "top_indices": reference.top_indices.to("cpu", dtype=torch.int32).contiguous(),
        "top_log_probs": reference.top_log_probs.cpu().contiguous(),
        "rest_log_prob": reference.rest_log_prob.cpu().contiguous(),
        "target_log_prob": reference.target_log_prob.cpu().contiguous(),
    }
    with atomic_directory(entry) as directory:
        save_file(tensors, directory / TENSORS_FILE)
        write_json_atomic(directory / META_FILE, meta)


def load_reference_model(
    precision: DictConfig, family: Any, spec: ModelSpec, device: Device, cache_dir: Path
) -> LoadedModel:
    """The model at the reference precision, through the backend registry like any job's."""
    from quantbench.backends.base import LoadRequest
    from quantbench.config import registry

    backend = registry.backends().get(precision.backend)
    reason = backend.unavailable_reason(device) or backend.unsupported_reason(family, spec)
    if reason:
        raise QualityUnavailable(
            f"reference precision '{precision.name}' cannot run here: {reason}; set quality.kld.reference"
        )
    return backend.load(LoadRequest(model=spec, family=family, precision=precision, device=device, cache_dir=cache_dir))
