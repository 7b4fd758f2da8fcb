"""Structured-config schemas, stored in Hydra's ConfigStore.

Each YAML option under `conf/<group>/` starts with `defaults: [base_<group>]` (or a more specific
schema such as `base_bnb_nf4`), so a misspelt key in a YAML file or on the command line is an
error instead of a silently ignored setting. The top-level groups are typed `Any` so that each
option can extend the schema that fits it, including schemas that plugins store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class ModelConfig:
    name: str = MISSING
    family: str = "decoder"  # a name in the quantbench.families entry-point group
    # hub: `id` on the Hugging Face hub; local: a directory at `path`;
    # gguf: `gguf_file` inside `path` or inside the installed Python package `gguf_package`;
    # random_init: `architecture` (a transformers config) with a locally trained tokenizer.
    source: str = "hub"
    id: Optional[str] = None
    revision: Optional[str] = None
    path: Optional[str] = None
    gguf_package: Optional[str] = None
    gguf_file: Optional[str] = None
    architecture: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    trust_remote_code: bool = False
    # A group size that divides every quantized layer's input width, for calibration methods.
    quant_group_size: Optional[int] = None
    # gptq | awq: the checkpoint at `id`/`path` already holds weights quantized by this method;
    # precision=gptq/awq then loads it as it is, without calibration.
    prequantized: Optional[str] = None
    # Shown wherever this model's quality numbers are reported (e.g. where its weights came from).
    note: Optional[str] = None
    # Random weights at a real size (llama-1b-random): speed and memory only; quality metrics are
    # refused with a reason in `quality_skipped` (quantbench/models/random_init.py).
    speed_only: bool = False


@dataclass
class PrecisionConfig:
    name: str = MISSING
    backend: str = MISSING  # a name in the quantbench.backends entry-point group


@dataclass
class DensePrecisionConfig(PrecisionConfig):
    dtype: str = MISSING  # float32 | float16 | bfloat16


@dataclass
class BnbInt8PrecisionConfig(PrecisionConfig):
    threshold: float = 6.0  # LLM.int8() outlier threshold
    skip_modules: List[str] = field(default_factory=lambda: ["lm_head"])


@dataclass
class BnbFourBitPrecisionConfig(PrecisionConfig):
    quant_type: str = "nf4"  # nf4 | fp4
    double_quant: bool = True
    # auto: bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU.
    compute_dtype: str = "auto"
    skip_modules: List[str] = field(default_factory=lambda: ["lm_head"])


@dataclass
class TorchAoPrecisionConfig(PrecisionConfig):
    """torchao through transformers' TorchAoConfig: quantized while the weights load, no calibration."""

    # int8_weight_only | int8_dynamic (backend torchao), int4_weight_only (torchao-int4),
    # float8_dynamic (torchao-fp8)
    method: str = MISSING
    group_size: int = 128  # int4_weight_only: weights sharing one scale and zero point (32, 64, 128, 256)
    # Activations and unquantized layers: auto is bfloat16 on GPUs that have it, float16 on older
    # GPUs, float32 on CPU (int4 and float8 always run bfloat16).
    dtype: str = "auto"


@dataclass
class Fp8PrecisionConfig(PrecisionConfig):
    """transformers' fine-grained FP8 (FineGrainedFP8Config): e4m3 weights in blocks, dynamic activations."""

    weight_block_size: List[int] = field(default_factory=lambda: [128, 128])  # weights sharing one scale


@dataclass
class QuantoPrecisionConfig(PrecisionConfig):
    """optimum-quanto weights through transformers' QuantoConfig."""

    weights: str = MISSING  # int8 | int4 | int2 | float8
    dtype: str = "auto"  # as TorchAoPrecisionConfig.dtype


@dataclass
class CalibrationConfig:
    """The text a calibration-based method (gptq, awq) sees while it quantizes."""

    # A dataset option (builtin, pubmedqa, wikitext2, or a plugin's) or the path of a plain text file.
    dataset: str = "builtin"
    path: Optional[str] = None  # replaces the dataset option's `path` (e.g. a local ori_pqal.json)
    # replaces the dataset option's `split`: e.g. pubmedqa's train split, so that quality scores
    # on the test split are never computed on calibration text
    split: Optional[str] = None
    n_samples: int = 128  # token windows
    seq_len: int = 512  # tokens per window
    seed: int = 0  # which windows, in which order


@dataclass
class CalibratedPrecisionConfig(PrecisionConfig):
    """Quantized once from the full-precision model (gptqmodel: gptq, awq; auto-round: autoround), then cached on disk."""

    bits: int = 4
    # null: the model's quant_group_size, else 128; -1: one group per output row (no grouping).
    group_size: Optional[int] = None
    sym: bool = True  # symmetric quantization (no zero point)
    # Compute dtype of the loaded checkpoint: auto (gptqmodel's choice per device), float16, bfloat16, float32.
    dtype: str = "auto"
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


@dataclass
class GptqPrecisionConfig(CalibratedPrecisionConfig):
    desc_act: bool = False  # act-order: quantize columns by decreasing activation size
    damp_percent: Optional[float] = None  # Hessian dampening; null: gptqmodel's default


@dataclass
class AwqPrecisionConfig(CalibratedPrecisionConfig):
    pass


@dataclass
class HqqPrecisionConfig(PrecisionConfig):
    """Half-quadratic quantization (the hqq library): weights quantized while the model loads, no calibration."""

    bits: int = 4  # 8, 4, 3, 2 or 1
    # Weights sharing one scale and zero point; must divide every quantized layer's input width.
    # null: the model's quant_group_size, else 64.
    group_size: Optional[int] = None
    # Activations, scales, zero points and the layers left unquantized (lm_head): auto is bfloat16
    # on GPUs that have it, float16 on older GPUs, float32 on CPU.
    compute_dtype: str = "auto"


@dataclass
class AutoRoundPrecisionConfig(CalibratedPrecisionConfig):
    """Intel AutoRound (signed-gradient rounding), calibrated once on the gptq/awq calibration text, cached."""

    iters: int = 50  # tuning steps per decoder block; auto-round's own default is 200 (minutes on a CPU)
    batch_size: int = 4  # calibration windows per tuning step
    # Calibration text: smaller than gptq's defaults, so a CPU quantizes SmolLM2 in minutes.
    calibration: CalibrationConfig = field(default_factory=lambda: CalibrationConfig(n_samples=16, seq_len=256))


@dataclass
class GgufPrecisionConfig(PrecisionConfig):
    """A GGUF file type made by llama.cpp's converter and quantizer, run by the llama.cpp engine."""

    type: str = MISSING  # f32, f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, ... (quantbench/gguf/types.py)
    engine: str = "llama.cpp"  # who runs it


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
    `match` pattern fits its device name (quantbench/measure/hardware.py)."""

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


@dataclass
class DatasetConfig:
    name: str = MISSING
    loader: str = MISSING  # a name in the quantbench.datasets entry-point group
    path: Optional[str] = None  # a local file; when unset, the loader's default source
    hub_id: Optional[str] = None
    split: Optional[str] = None
    limit: Optional[int] = None  # at most this many samples
    chat_template: bool = False  # wrap each prompt in the tokenizer's chat template, if it has one


@dataclass
class ImageFolderDatasetConfig(DatasetConfig):
    # `path` is the JSONL of prompts; relative image paths in it start here (default: its folder).
    image_dir: Optional[str] = None


@dataclass
class SyntheticImagesDatasetConfig(DatasetConfig):
    num_samples: int = 16
    image_size: int = 224  # pixels a side; the processor resizes to the model's input size anyway
    prompt: str = "answer en what color is the shape?"
    seed: int = 0


@dataclass
class PubMedQADatasetConfig(DatasetConfig):
    split: Optional[str] = "test"  # test: the standard 500 questions; train: the other 500; all: 1000
    test_ids_path: Optional[str] = None  # test_ground_truth.json; default: beside `path`


@dataclass
class WikiTextDatasetConfig(DatasetConfig):
    hub_config: str = "wikitext-2-raw-v1"  # the hub dataset's configuration (subset)


@dataclass
class PerplexityQualityConfig:
    """quality.ppl, present when `ppl` is selected: it scores quality.text in quality's windows."""


@dataclass
class FidelityQualityConfig:
    """quality.kld: KL divergence and top-1 agreement against a reference precision."""

    reference: str = "auto"  # a precision option (fp32, bf16, ...); auto: fp32 on CPU, bf16 on GPU
    top_k: int = 32  # reference log-probs kept per token; the rest is one "other" bucket


@dataclass
class PubMedQAQualityConfig(PubMedQADatasetConfig):
    """quality.pubmedqa: the questions (read by the pubmedqa loader) and how they are answered."""

    name: str = "pubmedqa"
    loader: str = "pubmedqa"
    path: Optional[str] = "${..data_dir}/pubmedqa/ori_pqal.json"  # the hub when no file is there
    hub_id: Optional[str] = "qiaojin/PubMedQA"
    # loglikelihood: lm-eval's protocol (argmax of log P(" yes"/" no"/" maybe" | prompt));
    # generate: greedy answer, parsed for the first yes/no/maybe (for chat models).
    mode: str = "loglikelihood"
    max_prompt_tokens: int = 2048  # longer prompts lose their beginning, as in lm-eval
    max_new_tokens: int = 8  # generate mode
    chat_template: bool = True  # generate mode, where the tokenizer has one


@dataclass
class QualityConfig:
    """`quality=[ppl,kld,pubmedqa]` adds the sub-nodes; none selected (the default) is a pure speed run."""

    limit: Optional[int] = None  # quick runs: at most this many text windows and PubMedQA questions
    confidence: float = 0.95  # of every interval
    # Where the local data files live (pubmedqa/, wikitext-2/): $QUANTBENCH_DATA, else a per-user
    # folder; a missing file falls back to the hub (quantbench/quality/sources.py).
    data_dir: str = "${oc.env:QUANTBENCH_DATA,'~/.cache/quantbench/data'}"
    # The evaluation text of perplexity and KL divergence, read by a dataset plugin.
    text: Any = field(
        default_factory=lambda: WikiTextDatasetConfig(
            name="wikitext2", loader="wikitext2", path="${..data_dir}/wikitext-2/test.txt", hub_id="wikitext", split="test"
        )
    )
    context_tokens: int = 512  # window length
    stride: int = 512  # window start to window start; each window scores the tokens not scored before
    max_tokens: Optional[int] = None  # use only the first N tokens of the text (CPU runs)
    ppl: Optional[PerplexityQualityConfig] = None
    kld: Optional[FidelityQualityConfig] = None
    pubmedqa: Optional[PubMedQAQualityConfig] = None


@dataclass
class BenchConfig:
    warmup_iterations: int = 2
    min_iterations: int = 10
    min_seconds: float = 2.0
    max_iterations: int = 1000
    # The time budget of a job (seconds; null: none). The timed phase stops before an iteration
    # expected to end past max_seconds, whatever min_iterations and min_seconds ask, but never
    # before 3 iterations; warm-up ends after the first iteration that alone takes longer than
    # warmup_max_seconds. result.json records a cut (budget_cut, budget_cut_reason).
    max_seconds: Optional[float] = 300.0
    warmup_max_seconds: Optional[float] = 60.0
    max_new_tokens: int = 32
    max_input_tokens: int = 256
    seed: int = 0
    # process: each job in its own child process (its own peak memory; a crash or hang is a
    # failed row), forked from a warm worker that has imported torch once (quantbench/warm_worker.py);
    # spawn: each job in a freshly started interpreter; none: in the sweep's process, for
    # debugging with breakpoints. The environment
    # variable QUANTBENCH_ISOLATION changes the default (e.g. for a test suite of tiny jobs).
    isolation: str = "${oc.env:QUANTBENCH_ISOLATION,process}"
    timeout_s: Optional[float] = None  # an isolated job running longer is killed and recorded as failed
    # Other processes on the job's GPU (NVML, at the job's start; result.json other_gpu_processes):
    # warn logs them and runs the job; error skips it with them as the reason.
    exclusive_gpu: str = "warn"
    # Between-run variance: a sweep (-m) runs every configuration this many times, round-robin
    # (all configurations once, then all again), and the statistics take the repeat as the unit.
    # 3 for anything published; 1 measures only the noise within one job. Set by the sweep, not
    # by hand: `repeat` is each job's index (0 .. repeats-1), part of its identity for resume.
    repeats: int = 1
    repeat: int = 0


@dataclass
class AnalysisConfig:
    """Statistics, cost and the report of a sweep (quantbench/analysis, quantbench report).

    The same dataclass is the `analysis` config node and the settings the analysis code takes;
    `quantbench report` and `recommend` build it from the node a sweep ran with (`from_values`).
    """

    baseline: str = "fp32"  # the precision every other one is compared with
    # Several sweeps in one report: the hardware every other is compared with (a hardware name, a
    # device name, or both as the report writes them); null: the first sweep directory's.
    baseline_hardware: Optional[str] = None
    confidence: float = 0.95  # of every interval
    bootstrap_resamples: int = 2000
    alpha: float = 0.05  # a ratio is called faster/slower only where p < alpha
    seed: int = 0  # of the bootstrap
    # Fewer timed iterations than this and an interval is flagged as rough (bench.min_iterations
    # decides how many are taken).
    warn_below_iterations: int = 10
    report_at_end: bool = True  # write report.md/report.html after the sweep is collected
    # Serving: the concurrency (or request rate) of the study table; null: the highest load every
    # precision measured.
    serve_load: Optional[float] = None
    # Serving: the p95 end-to-end bound (ms) of "highest load under the SLO" for jobs that ran
    # without serve.slo; null: those jobs have no SLO to judge.
    serve_max_e2e_p95_ms: Optional[float] = None
    # Quality gate (quantbench/analysis/gate.py): a configuration passes when it keeps at least this
    # fraction of the baseline's quality. 0.99: MLPerf's accuracy target (99.9 % its strict one);
    # 0.95: llm-compressor's recovery threshold.
    quality_gate: float = 0.99
    # What the gate measures: auto (PubMedQA accuracy where measured, else perplexity inverted,
    # PPL_baseline / PPL), pubmedqa or ppl.
    quality_gate_metric: str = "auto"

    @classmethod
    def from_values(cls, values: Any = None, **overrides: Any) -> "AnalysisConfig":
        """From an `analysis` config node or the dict a result.json holds, then `overrides` (None
        leaves a value as it is). Keys this version does not know (written by a newer quantbench)
        are left out; the types are the schema's, so a YAML `0.9` and a CLI `--confidence 0.9` agree."""
        from omegaconf import DictConfig, OmegaConf

        if isinstance(values, DictConfig):
            values = OmegaConf.to_container(values, resolve=True)
        known = {item.name for item in fields(cls)}
        chosen = {key: value for key, value in dict(values or {}).items() if key in known}
        chosen |= {key: value for key, value in overrides.items() if value is not None}
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), chosen))


@dataclass
class ScenarioConfig:
    """How the model is driven: `offline` (timed generate() on a static batch) or `serve` (load
    levels against an OpenAI-compatible server, quantbench/scenarios/serve.py)."""

    name: str = MISSING


@dataclass
class EngineConfig:
    """Who runs the model: a name in the quantbench.engines entry-point group, or `auto` (the
    precision's own engine: its `engine` key where it has one, else transformers)."""

    name: str = MISSING


@dataclass
class ServerEngineConfig(EngineConfig):
    """An engine whose server quantbench starts for each serving job, on a free port of 127.0.0.1."""

    # The executable (a path, or a command line such as `python my_server.py`); null: the engine's
    # own (e.g. `vllm` on PATH), so an engine may live in its own virtual environment.
    command: Optional[str] = None
    args: List[str] = field(default_factory=list)  # appended to the command line quantbench builds
    # Reuse of cached prompt prefixes across requests; null: the engine's default (recorded as such).
    prefix_caching: Optional[bool] = None


@dataclass
class TransformersEngineConfig(ServerEngineConfig):
    """`transformers serve`: continuous batching reserves this share of the device's memory for its
    KV cache at start (`--cb-max-memory-percent`, a fraction). transformers' own default (0.6 of
    RAM on a CPU, 0.9 of a GPU) leaves no room for a second server or sweep on the same machine;
    null: the server's default."""

    kv_cache_memory_fraction: Optional[float] = 0.2


@dataclass
class EndpointEngineConfig(EngineConfig):
    """An OpenAI-compatible server that is already running (TGI, SGLang, llama-server, a remote
    deployment): quantbench sends its load to `url` and starts nothing."""

    url: Optional[str] = None  # where /v1/... lives, e.g. http://127.0.0.1:8000
    # The NAME of the environment variable holding the API key; the key itself is never in a config.
    api_key_env: Optional[str] = None
    model: Optional[str] = None  # the served model's name; null: the first one GET /v1/models lists
    # Offered with every request body as it is, any keys (e.g. {ignore_eos: true} for a vLLM
    # endpoint); a field the server refuses is dropped at the start probe and recorded.
    extra_body: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SloConfig:
    """Service-level objectives (vLLM's goodput): a request meets them when it succeeded and every
    objective given here holds; null objectives are not checked."""

    ttft_ms: Optional[float] = None
    tpot_ms: Optional[float] = None
    e2e_ms: Optional[float] = None


@dataclass
class ServeConfig:
    """Load levels of `scenario=serve`: closed loop (concurrency) or open loop (request_rate)."""

    # Closed loop: simulated users, each sending its next request when its previous one ends.
    concurrency: List[int] = field(default_factory=lambda: [1])
    # Open loop: requests per second, seeded Poisson arrivals. Exclusive with a concurrency list
    # other than the default [1].
    request_rate: List[float] = field(default_factory=list)
    # A level ends after this many requests, or after duration_s seconds of sending, whichever
    # comes first (null: that limit is off; at least one must be set).
    requests_per_level: Optional[int] = 64
    duration_s: Optional[float] = None
    warmup_requests: int = 2  # per level, before its measured requests (at least one per user)
    startup_timeout_s: float = 600.0  # from starting the server until its health endpoint answers
    request_timeout_s: float = 600.0  # one request, from sending until its last chunk
    slo: SloConfig = field(default_factory=SloConfig)


@dataclass
class QuantbenchConfig:
    model: Any = MISSING
    precision: Any = MISSING
    hardware: Any = MISSING
    dataset: Any = MISSING
    bench: Any = MISSING
    batch: int = 1
    quality: QualityConfig = field(default_factory=QualityConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    scenario: Any = MISSING
    engine: Any = MISSING
    serve: ServeConfig = field(default_factory=ServeConfig)
    # Materialised models and quantized checkpoints; shared by every job and every sweep.
    cache_dir: str = "${oc.env:QUANTBENCH_CACHE,'~/.cache/quantbench'}"
    # Re-running a sweep into its own directory (hydra.sweep.dir=...) reuses every ok result of
    # the same config and runs the rest; false re-runs everything.
    resume: bool = True


# Config keys renamed since an earlier quantbench: old dotted key -> new dotted key. One table for
# every use: an old name on the command line is a one-line error naming the new one, and a
# result.json written with the old names is read with the new ones (its config hash included).
RENAMED_KEYS: dict[str, str] = {
    "hardware.price_per_hour": "hardware.price_per_hour_usd",
    "analysis.confidence_level": "analysis.confidence",
    "analysis.min_iterations": "analysis.warn_below_iterations",
}


def register_configs() -> None:
    """Store every schema; idempotent, so tests and the app may both call it."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=QuantbenchConfig)
    store.store(group="model", name="base_model", node=ModelConfig)
    store.store(group="precision", name="base_precision", node=PrecisionConfig)
    store.store(group="precision", name="base_dense", node=DensePrecisionConfig)
    store.store(group="precision", name="base_bnb_int8", node=BnbInt8PrecisionConfig)
    store.store(group="precision", name="base_bnb_4bit", node=BnbFourBitPrecisionConfig)
    store.store(group="precision", name="base_torchao", node=TorchAoPrecisionConfig)
    store.store(group="precision", name="base_fp8", node=Fp8PrecisionConfig)
    store.store(group="precision", name="base_quanto", node=QuantoPrecisionConfig)
    store.store(group="precision", name="base_gptq", node=GptqPrecisionConfig)
    store.store(group="precision", name="base_awq", node=AwqPrecisionConfig)
    store.store(group="precision", name="base_gguf", node=GgufPrecisionConfig)
    store.store(group="precision", name="base_hqq", node=HqqPrecisionConfig)
    store.store(group="precision", name="base_autoround", node=AutoRoundPrecisionConfig)
    store.store(group="hardware", name="base_hardware", node=HardwareConfig)
    store.store(group="dataset", name="base_dataset", node=DatasetConfig)
    store.store(group="dataset", name="base_image_folder", node=ImageFolderDatasetConfig)
    store.store(group="dataset", name="base_synthetic_images", node=SyntheticImagesDatasetConfig)
    store.store(group="dataset", name="base_pubmedqa", node=PubMedQADatasetConfig)
    store.store(group="bench", name="base_bench", node=BenchConfig)
    store.store(group="dataset", name="base_wikitext", node=WikiTextDatasetConfig)
    store.store(group="scenario", name="base_scenario", node=ScenarioConfig)
    store.store(group="engine", name="base_engine", node=EngineConfig)
    store.store(group="engine", name="base_server_engine", node=ServerEngineConfig)
    store.store(group="engine", name="base_transformers_engine", node=TransformersEngineConfig)
    store.store(group="engine", name="base_endpoint_engine", node=_open_keys(EndpointEngineConfig, "extra_body"))
    register_plugin_schemas(store)


def _open_keys(schema: type, key: str) -> DictConfig:
    """The schema with `key` open to any keys: Hydra sets struct mode on the whole config, so
    `engine.extra_body={ignore_eos: true}` would be refused as a key not in the schema, although
    the dictionary is passed through to the server as it is."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_struct(node[key], False)
    return node


# The group a plugin's schema joins: the group of the built-in schema it extends.
PLUGIN_SCHEMA_GROUPS = {PrecisionConfig: "precision", ModelConfig: "model", DatasetConfig: "dataset", HardwareConfig: "hardware"}
log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning("quantbench: %s", message)  # register_configs runs several times per process


def register_plugin_schemas(store: ConfigStore) -> None:
    """Store each schema of the `quantbench.schemas` entry points in the group of the schema it
    extends, after the built-ins; one that cannot be stored is logged and the others still are."""
    from quantbench.plugin_configs import plugin_schemas

    for schema in plugin_schemas():
        problem, group = schema.error, None
        if problem is None:
            extended = [name for base, name in PLUGIN_SCHEMA_GROUPS.items() if isinstance(schema.node, type) and is_dataclass(schema.node) and issubclass(schema.node, base)]
            group = extended[0] if extended else None
            if group is None:
                choices = ", ".join(base.__name__ for base in PLUGIN_SCHEMA_GROUPS)
                problem = f"{schema.node!r} is not a dataclass extending one of {choices} (from quantbench.api)"
        if group is not None:
            path = f"{group}/{schema.name}.yaml"
            # provider: None for quantbench's own, the package for a plugin's (stored on an earlier call)
            if store.get_type(path) == ObjectType.CONFIG and store.load(path).provider != schema.distribution:
                problem = f"{path} is taken by {store.load(path).provider or 'quantbench'}; rename the entry point"
        if problem is not None:
            _warn_once(f"{schema.origin} not registered: {problem}")
            continue
        store.store(group=group, name=schema.name, node=schema.node, provider=schema.distribution)


def is_schema_option(name: str) -> bool:
    """Schemas live in the groups too; they are not options a user picks."""
    return name.startswith("base_")
