"""What every job does before its engine runs: resolve the family and the backend, check that the
combination can run here, read the dataset, measure the hardware facts, resolve the model.

One helper for the offline scenario (every engine's) and the serving scenario, so both skip the same
combinations with the same reasons, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.config import registry
from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.families.base import ModelFamily
    from quantbench.measure.hardware_facts import HardwareFacts
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device
    from quantbench.runtime.progress import JobProgress


@dataclass(frozen=True)
class JobSetup:
    family: ModelFamily
    backend: Any  # the precision's backend plugin
    dataset: Any  # the dataset's samples (a sequence)
    cache_dir: Path
    hardware: HardwareFacts
    spec: ModelSpec

    def load_request(self, cfg: DictConfig, device: Device) -> Any:
        """The backend's LoadRequest for this job's model and precision."""
        from quantbench.backends.base import LoadRequest

        return LoadRequest(
            model=self.spec, family=self.family, precision=cfg.precision, device=device, cache_dir=self.cache_dir
        )


def prepare_job(cfg: DictConfig, device: Device, progress: JobProgress, *, backend_runs_here: bool = True) -> JobSetup:
    """The job's family, backend, dataset, hardware facts and model; JobSkipped for a combination
    that cannot run. `backend_runs_here=False` (a server loads the weights, not this process) leaves
    out the backend's own checks."""
    from quantbench.cache import cache_root
    from quantbench.measure.hardware_facts import resolve_hardware_facts
    from quantbench.models.random_init import check_fits
    from quantbench.models.source import resolve_model

    family = registry.families().get(cfg.model.family)
    backend = registry.backends().get(cfg.precision.backend)
    if backend_runs_here:
        reason = backend.unavailable_reason(device) or backend.unsupported_reason(family, None)
        if reason:
            raise JobSkipped(reason)
    # The dataset is read before any model is loaded, so a malformed file fails in a second.
    dataset = registry.datasets().get(cfg.dataset.loader).load(cfg.dataset)
    if not dataset:
        raise JobSkipped(f"dataset '{cfg.dataset.name}' has no samples")
    cache_dir = cache_root(cfg.cache_dir)
    # Before the memory peaks are reset: a CPU's bandwidth is measured here, once per CPU model.
    hardware = resolve_hardware_facts(cfg.hardware, device, cache_dir)
    # A random-init model too large for this machine is skipped before it is built.
    check_fits(cfg.model, cfg.precision, device)
    spec = resolve_model(cfg.model, family, cache_dir, progress.long_step)
    if backend_runs_here:
        reason = backend.unsupported_reason(family, spec)
        if reason:
            raise JobSkipped(reason)
    return JobSetup(family=family, backend=backend, dataset=dataset, cache_dir=cache_dir, hardware=hardware, spec=spec)
