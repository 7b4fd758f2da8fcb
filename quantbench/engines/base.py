"""The engine protocols, and which engine a job uses.

A precision says what the weights are, an engine says who runs them. Two kinds of engine serve:
a `ServerEngine` whose server quantbench starts for each job (transformers serve, vLLM, llama.cpp),
and an engine with an `endpoint(engine_cfg)` method for a server already running somewhere
(engine=openai). What a server accepts (usage in the stream, the engine's request fields) is probed
at its start (quantbench.loadgen.capabilities), not declared here. `engine=auto` is the precision's own
engine: the precision option's `engine` key where it has one (GGUF types name llama.cpp), else
transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.runtime.device import Device

AUTO = "auto"
# The engine of every precision that does not name one (fp32 ... awq load through transformers).
DEFAULT_ENGINE = "transformers"


@dataclass(frozen=True)
class ServerRequest:
    """Everything an engine needs to write its server's command line."""

    weights: str  # the directory the server loads (a materialised model or a quantized checkpoint)
    precision: DictConfig
    engine: DictConfig
    device: Device
    host: str
    port: int
    seed: int
    trust_remote_code: bool = False
    threads: int | None = None  # hardware.threads on CPU (None on GPU): for engines that take a thread count
    cache_dir: Path | None = None  # quantbench's cache: where `quantbench engines install` put the engine
    # The job's load, for servers that size themselves to it: the most users at once (None: open
    # loop, no bound) and the longest request (its prompt's tokens, template included, plus
    # bench.max_new_tokens).
    max_concurrency: int | None = None
    max_sequence_tokens: int | None = None
    # Log-probabilities per token a request may ask (the served fidelity's serve.fidelity.top_k),
    # for servers that cap them (vLLM's --max-logprobs); None: the server's default.
    max_logprobs: int | None = None


@dataclass(frozen=True)
class ServerLaunch:
    command: list[str]
    health_path: str  # answers 200 once the model is loaded
    model_name: str  # what each request names as `model`
    prefix_caching: str  # on | off | "<engine> default: ..." (recorded with the result)
    environment: dict[str, str] = field(default_factory=dict)  # added to the server's environment
    facts: dict[str, Any] = field(default_factory=dict)  # recorded with the result (e.g. its KV-cache budget)
    memory_setting: str | None = None  # the setting that sizes the server's memory, named if it dies of lack of it


@runtime_checkable
class Engine(Protocol):
    """Every engine. Offline (`offline = True`), the offline scenario (quantbench.scenarios.offline)
    times the `OfflineRunner` that the engine's `offline_runner(job)` makes (quantbench.engines.offline:
    load, generate, facts, quality); an offline engine without that method runs quantbench's
    transformers runner. Serving, a `ServerEngine` is started per job, an engine with
    `endpoint(engine_cfg)` is attached to; an engine with neither does not serve (a skipped row)."""

    name: str
    description: str
    offline: bool  # runs `scenario=offline` in quantbench's own process
    starts_server: bool  # serving: quantbench starts its server (else: attaches to engine.url)


@runtime_checkable
class ServerEngine(Engine, Protocol):
    def unavailable_reason(self, engine: DictConfig, cache_dir: Path) -> str | None:
        """Why this engine's server cannot start here (executable, package or its build in quantbench's
        cache, `cache_dir`, missing), or None."""

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        """Why this engine cannot serve this precision as configured, or None."""

    def launch(self, request: ServerRequest) -> ServerLaunch:
        """The server's command line for this precision, on request.host:request.port."""

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        """Request-body fields that should make the server generate exactly max_tokens tokens (end
        of sequence ignored); offered to the server at its start, each dropped if it refuses it."""


def engine_name(cfg: DictConfig) -> str:
    """The engine this job uses: engine.name, with `auto` resolved to the precision's engine."""
    name = str(cfg.engine.name)
    if name != AUTO:
        return name
    return str(cfg.precision.get("engine") or DEFAULT_ENGINE)


def resolve_engine(cfg: DictConfig) -> tuple[str, Any]:
    """(name, plugin) of the job's engine; JobSkipped when no installed package registers it."""
    from quantbench.config import registry
    from quantbench.errors import UnknownPluginError

    name = engine_name(cfg)
    try:
        return name, registry.engines().get(name)
    except UnknownPluginError as error:
        raise JobSkipped(str(error)) from None


def check_precision_engine(cfg: DictConfig, name: str, plugin: Any = None) -> None:
    """A precision that names its own engine runs only there (a GGUF file is not a transformers model),
    or on an engine whose `precision_engines` names that one (llama-cpp-python serves llama.cpp's files)."""
    own = cfg.precision.get("engine")
    if own and own != name and own not in getattr(plugin, "precision_engines", ()):
        raise JobSkipped(
            f"precision '{cfg.precision.name}' runs on the {own} engine, not {name}; use engine={own} or engine=auto"
        )
