"""Which jobs of a sweep run, decided before any is launched: a resumed sweep (or a sweep run again into
its own directory) launches only the jobs without an `ok` result of the same config, under their own
job numbers; on SLURM the others cost no allocation at all.

"The same config" is quantbench.jobdir's rule (`reusable_result`), applied to the job's composed
config. Composing a job's config with Hydra costs about 0.3 s on two cores, an hour for 10,000
jobs, so the plan first tries a record the job left beside its result (`REUSE_RECORD_FILE`): the
fingerprint of everything composition reads (the config sources, the environment variables they
read, the code that hashes a config: `composition_fingerprint`), the job's overrides, and the size,
time and stored config hash of the `result.json` the rule accepted. The same inputs compose the
same config, so when all three are unchanged (the result by its size and time, or, in a copied
sweep directory, by its stored config hash) the rule's answer is unchanged too and nothing is
composed. Anything else
(no record, an edited config file, other overrides, a result.json written since) composes that one
job and asks the rule, and a job the rule accepts gets a fresh record. So a changed config is never
reused: at worst a job is composed that did not need to be.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from quantbench.atomic import write_json_atomic
from quantbench.jobdir import RESULT_FILE, REUSE_RECORD_FILE, job_config, result_stamp, reusable_result

log = logging.getLogger("quantbench")

# The job directory of job n is <sweep dir>/n only with Hydra's default subdir (quantbench's config);
# with any other the plan cannot tell which directory is whose, and every job is launched to decide.
NUMBERED_SUBDIR = "${hydra.job.num}"
# Hydra overrides that say where and how a sweep runs, never what a job's config holds.
_PLACE_ONLY = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=", "hydra.sweeper.dry_run=")
_ENVIRONMENT_READ = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class SweepPlan:
    """The jobs of a sweep by number: those to launch, and those an ok result of the same config covers."""

    total: int
    to_run: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    composed: int = 0  # jobs whose config had to be composed to decide (no usable record)
    fingerprint: str | None = None


# ---- the fingerprint of composition -------------------------------------------------------------


def composition_fingerprint(config_loader: Any, sweep_config: DictConfig) -> str:
    """A hash of everything a job's composed config is a function of, besides its own overrides: every
    config Hydra's search path holds (files, packages, the ConfigStore's schemas), the primary config's
    name and the sweep's Hydra overrides, the environment variables the configs read (`oc.env`), and
    what the reuse rule is made of: quantbench's version and the keys the config hash leaves out or
    renames (not the rule's source file: a refactoring must not cost a 10,000-job sweep an hour of
    composing; a change of the rule's meaning comes with a new version)."""
    from quantbench import __version__
    from quantbench.jobdir import HASH_EXCLUDED_KEYS, RENAMED_KEYS

    digest = hashlib.sha256()
    texts: list[str] = []
    for position, source in enumerate(_config_sources(config_loader, sweep_config)):
        # The source's place and contents, not its address: `python -m quantbench` reads quantbench's
        # configs as file://.../quantbench/conf, the `quantbench` command as pkg://quantbench.conf.
        digest.update(f"source {position}\n".encode())
        for name, text in _config_texts(source):
            texts.append(text)
            digest.update(f"config {name}\n{text}\n".encode())
    hydra = sweep_config.hydra
    digest.update(f"primary {hydra.job.config_name}\n".encode())
    hydra_overrides = [item for item in hydra.overrides.hydra if not item.startswith(_PLACE_ONLY)]
    digest.update(json.dumps(sorted(hydra_overrides)).encode())
    for name in sorted({match for text in texts for match in _ENVIRONMENT_READ.findall(text)}):
        digest.update(f"env {name}={os.environ.get(name)!r}\n".encode())
    digest.update(f"quantbench {__version__}\n".encode())
    digest.update(json.dumps([list(HASH_EXCLUDED_KEYS), RENAMED_KEYS], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _config_sources(config_loader: Any, sweep_config: DictConfig) -> list[Any]:
    """The config sources a job's composition reads: the app's search path with `hydra.searchpath`
    added before the ConfigStore's schemas, as Hydra's config loader builds it for each composition."""
    import copy

    from hydra._internal.config_repository import ConfigRepository

    search_path = copy.deepcopy(config_loader.get_search_path())
    schema = search_path.get_path().pop(-1)
    for path in OmegaConf.select(sweep_config, "hydra.searchpath", default=None) or []:
        search_path.append(provider="hydra.searchpath", path=str(path))
    search_path.append(schema.provider, schema.path)
    return ConfigRepository(config_search_path=search_path).get_sources()


def _config_texts(source: Any) -> list[tuple[str, str]]:
    """(name, text) of every config one source holds: the files' own text where the source is a
    directory or a package (fast), else each config loaded and written out as YAML (the ConfigStore)."""
    scheme = source.scheme()
    if scheme in ("file", "pkg"):
        root = Path(source.path) if scheme == "file" else _package_directory(source.path)
        if root is not None:
            return [
                (str(path.relative_to(root)), path.read_text(errors="replace"))
                for path in sorted(root.rglob("*.y*ml"))
                if path.is_file()
            ]
    texts = []
    for name in _config_names(source, ""):
        try:
            texts.append((name, OmegaConf.to_yaml(source.load_config(name).config)))
        except Exception as error:  # an unloadable option: its error is part of the state
            texts.append((name, f"unloadable: {type(error).__name__}: {error}"))
    return texts


def _package_directory(module_path: str) -> Path | None:
    """The directory of a `pkg://` config source, when the package lives in one (not in a zip)."""
    import importlib.util

    spec = importlib.util.find_spec(module_path.replace("/", "."))
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if len(locations) == 1 and Path(locations[0]).is_dir() else None


def _config_names(source: Any, group: str) -> list[str]:
    """Every config under `group` of one config source, by its path ("precision/nf4")."""
    names = []
    for item in source.list(group, None):
        path = f"{group}/{item}" if group else item
        if source.is_config(path):
            names.append(path)
        if source.is_group(path):
            names.extend(_config_names(source, path))
    return sorted(set(names))


# ---- the record a job leaves beside its ok result ------------------------------------------------


def write_reuse_record(job_dir: Path, fingerprint: str, overrides: Sequence[str], stored_hash: str | None) -> None:
    """After an ok result was measured or accepted: the inputs it was accepted under."""
    stamp = result_stamp(Path(job_dir))
    if stamp is None:
        return
    record = {"fingerprint": fingerprint, "overrides": list(overrides), "result": stamp, "config_hash": stored_hash}
    write_json_atomic(Path(job_dir) / REUSE_RECORD_FILE, record)


def _sets_resume(overrides: Sequence[str]) -> bool:
    """A job's own resume=false (or anything but true): decided on its composed config."""
    return any(
        key.lstrip("+~") == "resume" and value.strip().lower() != "true"
        for key, _, value in (item.partition("=") for item in overrides)
    )


def _record_covers(job_dir: Path, fingerprint: str, overrides: Sequence[str]) -> bool:
    """The record says this result was accepted under these inputs. A result.json of another size or
    time (a sweep directory copied without its times) is read: the same `ok` result, by the config
    hash it stores, is the one the record accepted."""
    try:
        record = json.loads((job_dir / REUSE_RECORD_FILE).read_text())
    except (OSError, ValueError):
        return False
    if not (
        isinstance(record, dict)
        and record.get("fingerprint") == fingerprint
        and record.get("overrides") == list(overrides)
    ):
        return False
    if record.get("result") == result_stamp(job_dir):
        return True
    stored = _stored(job_dir)
    return (
        stored.get("status") == "ok"
        and record.get("config_hash") is not None
        and (stored.get("config_hash") == record["config_hash"])
    )


def _stored(job_dir: Path) -> dict[str, Any]:
    """result.json as stored (status, config_hash), read plainly; empty when unreadable."""
    try:
        data = json.loads((job_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---- the plan -----------------------------------------------------------------------------------


def plan_sweep(
    sweep_config: DictConfig,
    jobs: Sequence[Sequence[str]],
    fingerprint: str | None,
    compose: Callable[[Sequence[str], int], DictConfig],
) -> SweepPlan:
    """Which of `jobs` (each its overrides, job n at position n) to launch. `compose(overrides, n)`
    composes job n's config, for the jobs no record covers."""
    plan = SweepPlan(total=len(jobs), fingerprint=fingerprint)
    sweep_dir = Path(str(sweep_config.hydra.sweep.dir))
    subdir = OmegaConf.to_container(sweep_config.hydra.sweep, resolve=False).get("subdir")
    if not sweep_config.get("resume", True) or subdir != NUMBERED_SUBDIR or not sweep_dir.is_dir():
        plan.to_run = list(range(len(jobs)))
        return plan
    for number, overrides in enumerate(jobs):
        job_dir = sweep_dir / str(number)
        if not (job_dir / RESULT_FILE).is_file():
            plan.to_run.append(number)
        elif (
            fingerprint is not None and not _sets_resume(overrides) and _record_covers(job_dir, fingerprint, overrides)
        ):
            plan.reused.append(number)
        elif _stored(job_dir).get("status") != "ok":  # failed, skipped or unreadable: it runs, nothing to compare
            plan.to_run.append(number)
        else:
            plan.composed += 1
            (plan.reused if _reusable(job_dir, overrides, number, fingerprint, compose) else plan.to_run).append(number)
    return plan


def _reusable(
    job_dir: Path,
    overrides: Sequence[str],
    number: int,
    fingerprint: str | None,
    compose: Callable[[Sequence[str], int], DictConfig],
) -> bool:
    """quantbench.jobdir's rule on the composed config; a job that cannot be composed runs (and says why)."""
    from quantbench.sweep.execute import command_line_keys

    try:
        cfg = compose(overrides, number)
        command_line = command_line_keys(cfg.hydra)
        with open_dict(cfg):
            del cfg["hydra"]  # as Hydra hands a job its config: without its own node
        config = job_config(cfg)
    except Exception as error:
        log.debug("job %d not composed for the plan (%s); it runs and reports", number, error)
        return False
    if not cfg.get("resume", True):
        return False
    previous = reusable_result(job_dir, config, command_line)
    if previous is None:
        return False
    if fingerprint is not None:
        write_reuse_record(job_dir, fingerprint, overrides, previous.config_hash)
    return True


def composer(config_loader: Any, sweep_config: DictConfig) -> Callable[[Sequence[str], int], DictConfig]:
    """Compose job n's config as the launchers do (hydra.job.num and id are n)."""

    def compose(overrides: Sequence[str], number: int) -> DictConfig:
        cfg = config_loader.load_sweep_config(sweep_config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.num = number
            cfg.hydra.job.id = number
        return cfg

    return compose
