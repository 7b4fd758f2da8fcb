"""The `hardware` group's schema (conf/hardware/): a machine's facts and its SLURM placement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING


@dataclass
class SlurmPlacementConfig:
    """Where this hardware lives on a SLURM cluster: read by hydra/launcher=quantbench_slurm, which
    submits each job of a sweep with its own hardware's placement. The names are site-specific:
    override them (hardware.slurm.partition=gpu-h100), or extend the hardware option in a site
    config file (docs/cluster.md)."""

    partition: Optional[str] = None
    gres: Optional[str] = None  # e.g. gpu:h100:1
    constraint: Optional[str] = None  # node features, e.g. h100
    gpus_per_node: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem_gb: Optional[int] = None


@dataclass
class HardwareConfig:
    """A machine and its facts. The options under conf/hardware (and plugins' hardware options) are
    the one table of hardware facts: a job on `hardware=auto` takes the facts of the option whose
    `match` pattern fits its device name (quantbench/measure/hardware_facts.py)."""

    name: str = MISSING
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    gpu_type: Optional[str] = None
    label: Optional[str] = None  # the product, as a report names it: "NVIDIA H100 SXM 80GB"
    # A regular expression searched in the device name torch reports, lower-cased, with - and _ read
    # as spaces ("nvidia h100 80gb hbm3"); where several options match, the longest match wins.
    match: Optional[str] = None
    price_per_hour_usd: Optional[float] = None  # USD per hour of the machine
    price_note: Optional[str] = None  # where the price comes from, e.g. "AWS g5.xlarge on-demand"
    # CPUs: the price per hour is this times the logical cores the job may use.
    price_per_core_hour_usd: Optional[float] = None
    memory_bandwidth_gb_s: Optional[float] = None  # datasheet; on a CPU, null: measured at job time
    memory_gb: Optional[float] = None
    peak_fp16_tflops: Optional[float] = None  # dense FP16/BF16 tensor throughput, datasheet, no sparsity
    # CPU threads of every engine (torch and llama.cpp alike, so engines compare at equal threads);
    # null: the cores this process may use.
    threads: Optional[int] = None
    slurm: SlurmPlacementConfig = field(default_factory=SlurmPlacementConfig)
