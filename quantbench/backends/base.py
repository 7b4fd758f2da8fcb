"""The backend protocol. A backend turns a model source plus a precision config into a loaded
model on a device; it also says, before anything heavy happens, whether it can run here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

T = TypeVar("T")


@dataclass
class LoadRequest:
    model: ModelSpec
    family: ModelFamily
    precision: DictConfig
    device: Device
    cache_dir: Path


@dataclass
class LoadedModel:
    model: Any
    processor: Any  # a tokenizer, or a multimodal processor
    # Backend-specific facts that go into the result row as they are (quantize_s, cache_hit,
    # kernel, checkpoint_bytes, ...). Keys are column names: give units in the name.
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str
    description: str

    def unavailable_reason(self, device: Device) -> str | None:
        """Why this backend cannot run on `device` (missing package, too old a GPU), or None."""

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        """Why this backend cannot handle this family (or this model), or None."""

    def load(self, request: LoadRequest) -> LoadedModel:
        """Load (and quantize, where needed) the model on the request's device."""


@dataclass(frozen=True)
class Requirement:
    """A package a backend needs: the name pip installs and the module Python imports.

    They differ often enough (`optimum-quanto` is imported as `optimum.quanto`) that a reason
    naming only one of them sends users to the wrong command.
    """

    package: str  # what `pip install` takes
    module: str | None = None  # what `import` takes; None: the package name
    install: str | None = None  # the command, where it is more than `pip install <package>` (a pin, an extra)

    @property
    def import_name(self) -> str:
        return self.module or self.package

    @property
    def install_command(self) -> str:
        return self.install or f"pip install {self.package}"


def module_missing(module: str) -> bool:
    """Whether `module` cannot be imported, found without importing it (its parents are imported).

    find_spec('a.b') imports `a` first, and raises when `a` is absent or fails to import: that is
    a module that cannot be imported too, not an error of the caller.
    """
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except Exception:
        return True


def missing_package_reason(*requirements: Requirement | str) -> str | None:
    """'needs P (pip install P); module M not importable' for the first requirement missing, or None.

    A plain string is a package whose import name is the same (`"bitsandbytes"`).
    """
    for requirement in requirements:
        if isinstance(requirement, str):
            requirement = Requirement(requirement)
        if module_missing(requirement.import_name):
            return (
                f"needs {requirement.package} ({requirement.install_command}); "
                f"module {requirement.import_name} not importable"
            )
    return None


def read_settings(settings: type[T], precision: Any) -> T:
    """The precision option as an instance of its settings dataclass.

    The node reaches a backend typed by its schema when the job runs in the sweep's process, and
    as a plain node read back from job.yaml in an isolated child: merging its values onto the
    dataclass gives the same typed settings either way. Keys the dataclass lacks are left out:
    composition has already rejected misspelt ones, and what remains is a sweep's setting carried
    by an option that does not use it (`-m precision=int8,nf4 precision.quant_type=fp4`).
    """
    from dataclasses import fields

    from omegaconf import OmegaConf

    known = {field.name for field in fields(settings)}
    values = {key: value for key, value in OmegaConf.to_container(precision, resolve=True).items() if key in known}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(settings), values))
