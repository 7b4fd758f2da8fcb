"""The engine protocols, and which engine a job uses.

A precision says what the weights are, an engine says who runs them. Two kinds of engine serve:
a `ServerEngine` whose server quantbench starts for each job (transformers serve, vLLM), and an
`EndpointEngine` already running somewhere (engine=openai). `engine=auto` is the precision's own
engine: the precision option's `engine` key where it has one (GGUF types name llama.cpp), else
transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.device import Device

AUTO = "auto"
# The engine of every precision that does not name one (fp32 ... awq load through transformers).
DEFAULT_ENGINE = "transformers"


@dataclass(frozen=True)
class ServerRequest:
    """Everything an engine needs to write its server's command line."""

    weights: str  # the directory the server loads (a materialised model or a quantized checkpoint)
    precision: "DictConfig"
    engine: "DictConfig"
    device: "Device"
    host: str
    port: int
    seed: int
    trust_remote_code: bool = False
    threads: int | None = None  # hardware.threads on CPU (None on GPU): for engines that take a thread count


@dataclass(frozen=True)
class ServerLaunch:
    command: list[str]
    health_path: str  # answers 200 once the model is loaded
    model_name: str  # what each request names as `model`
    prefix_caching: str  # on | off | "<engine> default: ..." (recorded with the result)
    environment: dict[str, str] = field(default_factory=dict)  # added to the server's environment


@runtime_checkable
class Engine(Protocol):
    """Every engine. Offline, an engine with a `measure_offline(cfg, device, job_dir, progress)`
    method runs it; the others run quantbench's transformers measurement (quantbench.job). Serving,
    a `ServerEngine` is started per job, an engine with `endpoint(engine_cfg)` is attached to; an
    engine with neither does not serve (a skipped row)."""

    name: str
    description: str
    offline: bool  # runs `scenario=offline` in quantbench's own process
    starts_server: bool  # serving: quantbench starts its server (else: attaches to engine.url)


@runtime_checkable
class ServerEngine(Engine, Protocol):
    stream_usage: bool  # the server accepts stream_options.include_usage

    def unavailable_reason(self, engine: "DictConfig") -> str | None:
        """Why this engine's server cannot start here (executable or package missing), or None."""

    def unsupported_reason(self, precision: "DictConfig", device: "Device") -> str | None:
        """Why this engine cannot serve this precision as configured, or None."""

    def launch(self, request: ServerRequest) -> ServerLaunch:
        """The server's command line for this precision, on request.host:request.port."""

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        """Request-body fields that make the server generate exactly max_tokens tokens (end of
        sequence ignored), where it allows that; {} where it does not."""


def engine_name(cfg: "DictConfig") -> str:
    """The engine this job uses: engine.name, with `auto` resolved to the precision's engine."""
    name = str(cfg.engine.name)
    if name != AUTO:
        return name
    return str(cfg.precision.get("engine") or DEFAULT_ENGINE)


def resolve_engine(cfg: "DictConfig") -> tuple[str, Any]:
    """(name, plugin) of the job's engine; JobSkipped when no installed package registers it."""
    from quantbench import registry
    from quantbench.errors import UnknownPluginError

    name = engine_name(cfg)
    try:
        return name, registry.engines().get(name)
    except UnknownPluginError as error:
        raise JobSkipped(str(error)) from None


def check_precision_engine(cfg: "DictConfig", name: str) -> None:
    """A precision that names its own engine runs only there (a GGUF file is not a transformers model)."""
    own = cfg.precision.get("engine")
    if own and own != name:
        raise JobSkipped(f"precision '{cfg.precision.name}' runs on the {own} engine, not {name}; use engine={own} or engine=auto")
