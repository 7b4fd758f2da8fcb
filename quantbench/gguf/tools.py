"""llama.cpp's own programs (llama-server, llama-bench, llama-perplexity, llama-imatrix,
llama-quantize), built once per pinned llama-cpp-python version into the quantbench cache.

The sources are the `vendor/llama.cpp/` tree of the same llama-cpp-python sdist whose converter
quantbench already uses (gguf/converter.py fetches it), so the tools read and write the files the
binding reads. They are built with cmake and ninja, with the portable CPU flags of the README's set-up
line (`PORTABLE_CPU_FLAGS`, their one owner), statically linked so the binaries need nothing beside
them, into `<cache_dir>/llama.cpp/tools-<version>/bin/`, with a manifest written last.

QUANTBENCH_LLAMA_CPP_TOOLS=/dir/with/binaries uses a build of one's own instead of the cache.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from quantbench.atomic import write_json_atomic
from quantbench.cache import MANIFEST_FILE, atomic_directory, is_complete, read_manifest
from quantbench.errors import JobSkipped, QuantbenchError
from quantbench.gguf.binding import PACKAGE, PINNED_VERSION
from quantbench.gguf.sdist import (
    CHANGELOG,
    LLAMA_CPP_DIR,
    SOURCE_ENV,
    changelog_commit,
    configured_source,
    download_sdist,
    extract_llama_cpp,
    llama_cpp_root,
)
from quantbench.runtime.logged_steps import run_logged

log = logging.getLogger("quantbench")

TOOLS_ENV = "QUANTBENCH_LLAMA_CPP_TOOLS"
INSTALL_COMMAND = "quantbench engines install llama.cpp"
TOOLS = ("llama-server", "llama-bench", "llama-perplexity", "llama-imatrix", "llama-quantize")
# llama.cpp compiles for the build machine's CPU by default (-march=native), which dies with SIGILL on
# another machine; these flags target any x86-64 CPU with AVX2. The README's set-up line passes the
# same flags to the binding's build in CMAKE_ARGS (tests/gguf/test_tools.py keeps the two equal).
PORTABLE_CPU_FLAGS = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
)
# Self-contained binaries (static libraries, no libcurl: models come from files), only the programs.
BUILD_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
# Extra flags of one's own (e.g. -DGGML_CUDA=on), the variable the binding's build reads too.
EXTRA_FLAGS_ENV = "CMAKE_ARGS"
BUILD_LOG = "build.log"
TOOLS_KIND = "llama.cpp tools"  # the manifest's `kind`


class ToolsUnavailable(QuantbenchError):
    """llama.cpp's programs are not built here (or failed to build); the message names the command."""


def tools_entry(cache_dir: Path, version: str = PINNED_VERSION) -> Path:
    """Where the build for this llama-cpp-python version lives, beside `converter-<version>`."""
    return Path(cache_dir) / LLAMA_CPP_DIR / f"tools-{version}"


def installed_tools(cache_dir: Path, version: str = PINNED_VERSION) -> Path | None:
    """The complete cache entry (manifest written last, every tool present), or None."""
    entry = tools_entry(cache_dir, version)
    if not (is_complete(entry) and (entry / MANIFEST_FILE).is_file()):
        return None
    if not all((entry / "bin" / name).is_file() for name in TOOLS):
        return None
    return entry


def tools_bin_dir(cache_dir: Path) -> Path:
    """The directory holding the tools: QUANTBENCH_LLAMA_CPP_TOOLS if set, else the cache's build."""
    override = os.environ.get(TOOLS_ENV)
    if override:
        directory = Path(override).expanduser()
        if not directory.is_dir():
            raise ToolsUnavailable(
                f"{TOOLS_ENV}={override} is not a directory; point it at a llama.cpp build's bin/ or unset it "
                f"and run `{INSTALL_COMMAND}`"
            )
        return directory
    entry = installed_tools(cache_dir)
    if entry is None:
        raise ToolsUnavailable(
            f"llama.cpp's tools are not built in {tools_entry(cache_dir)}; run `{INSTALL_COMMAND}` "
            f"(or set {TOOLS_ENV} to a directory holding {', '.join(TOOLS)})"
        )
    return entry / "bin"


def tool_path(cache_dir: Path, name: str) -> Path:
    """The executable `name` (one of TOOLS) of llama.cpp's build; ToolsUnavailable names the command."""
    if name not in TOOLS:
        raise ValueError(f"unknown llama.cpp tool '{name}'; expected one of {', '.join(TOOLS)}")
    path = tools_bin_dir(cache_dir) / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolsUnavailable(f"{path} is missing or not executable; run `{INSTALL_COMMAND}` (or fix {TOOLS_ENV})")
    return path


@functools.cache
def _version_of(path: str, mtime_ns: int) -> str:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    version = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("version:")), None)
    if done.returncode != 0 or version is None:
        raise JobSkipped(
            f"{path} --version did not name a version (exit {done.returncode}); rebuild llama.cpp's tools "
            f"({INSTALL_COMMAND} --force)"
        )
    return version


def tool_version(path: Path) -> str:
    """`7413 (a1b2c3d)`: the build number and commit a llama.cpp program prints for --version."""
    return _version_of(str(path), path.stat().st_mtime_ns)


def _build_program(name: str) -> str:
    """cmake or ninja: quantbench's environment's own (PyPI cmake/ninja, in the gguf extra), else PATH's."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise ToolsUnavailable(
            f"building llama.cpp's tools needs {name}, which is not installed; pip install cmake ninja "
            f"(both are in quantbench[gguf]) and rerun `{INSTALL_COMMAND}`"
        )
    return found


def cmake_flags() -> list[str]:
    """Everything the build passes to cmake's configure step, in order (recorded in the manifest)."""
    return [*BUILD_FLAGS, *PORTABLE_CPU_FLAGS, *shlex.split(os.environ.get(EXTRA_FLAGS_ENV, ""))]


def _last_ninja_step(lines: list[str]) -> str | None:
    """ninja's last `[done/total]` line, e.g. `[139/220]`."""
    steps = [line.split("]", 1)[0] + "]" for line in lines]
    steps = [step for step in steps if step.startswith("[") and "/" in step]
    return steps[-1] if steps else None


def _run_logged(command: list[str], log_file: Path, what: str, environment: dict[str, str]) -> None:
    """Run one build step into the log, saying ninja's progress every so often."""
    run_logged(command, log_file, f"{what} llama.cpp's tools", ToolsUnavailable, _last_ninja_step, environment)


def build_tools(source_root: Path, build_dir: Path, bin_dir: Path, log_file: Path, commit: str | None) -> dict:
    """Configure and build TOOLS from a llama.cpp tree; copy the binaries into `bin_dir`. Returns
    what the manifest records of the build."""
    cmake, ninja = _build_program("cmake"), _build_program("ninja")
    flags = cmake_flags()
    if commit:  # an sdist has no .git: name the commit its CHANGELOG gives (shown by `--version`)
        flags.append(f"-DLLAMA_BUILD_COMMIT={commit}")
    # llama.cpp's build asks git for the commit; never let it find an enclosing repository's
    environment = {**os.environ, "GIT_CEILING_DIRECTORIES": str(source_root.parent)}
    jobs = os.cpu_count() or 1
    started = time.monotonic()
    configure = [cmake, "-S", str(source_root), "-B", str(build_dir), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    _run_logged([*configure, *flags], log_file, "configuring", environment)
    log.info("building %s with %d jobs (log: %s)", ", ".join(TOOLS), jobs, log_file)
    _run_logged(
        [cmake, "--build", str(build_dir), "-j", str(jobs), "--target", *TOOLS], log_file, "building", environment
    )
    build_s = time.monotonic() - started
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in TOOLS:
        shutil.copy2(build_dir / "bin" / name, bin_dir / name)
    version = subprocess.run([str(bin_dir / "llama-server"), "--version"], capture_output=True, text=True)
    return {
        "cmake_flags": flags,
        "build_jobs": jobs,
        "build_s": round(build_s, 1),
        "llama_cpp_commit": commit,
        "llama_cpp_version": " ".join((version.stdout + version.stderr).split()),
        "cmake_version": subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout.split("\n")[0],
    }


class LlamaCppTools:
    """`quantbench engines install llama.cpp`: the programs, built once per pinned version."""

    name = "llama.cpp"
    command = INSTALL_COMMAND

    def installed(self, cache_dir: Path) -> Path | None:
        return installed_tools(cache_dir)

    def install(self, cache_dir: Path, force: bool = False) -> Path:
        entry = tools_entry(cache_dir)
        if not force and installed_tools(cache_dir) is not None:
            log.info("llama.cpp's tools are already built: %s", entry)
            return entry
        if entry.exists():
            shutil.rmtree(entry)
        # The log lives beside the entry while building, so a failed build leaves it to read.
        log_file = entry.parent / f"{entry.name}.{BUILD_LOG}"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("")
        source = configured_source()
        with atomic_directory(entry) as directory:
            scratch = directory / "scratch"
            scratch.mkdir()
            if source is None:
                source = download_sdist(PINNED_VERSION, scratch, "llama.cpp's sources")
            if source.is_dir():
                root, changelog = llama_cpp_root(source), source / CHANGELOG
            else:
                log.info("extracting llama.cpp's sources from %s", source.name)
                root = changelog_parent = scratch / "llama.cpp"
                extract_llama_cpp(source, root)
                changelog = changelog_parent / CHANGELOG
            if not (root / "CMakeLists.txt").is_file() or not (root / "tools" / "server").is_dir():
                raise ToolsUnavailable(
                    f"{source} holds no llama.cpp tree with tools/server; set {SOURCE_ENV} to the {PACKAGE} "
                    "sdist or a llama.cpp checkout"
                )
            built = build_tools(
                root, scratch / "build", directory / "bin", log_file, changelog_commit(changelog, PINNED_VERSION)
            )
            shutil.rmtree(scratch)
            shutil.move(log_file, directory / BUILD_LOG)
            manifest = {"kind": TOOLS_KIND, "version": PINNED_VERSION, "tools": list(TOOLS), "built": built}
            write_json_atomic(directory / MANIFEST_FILE, manifest)  # last: a manifest means a complete entry
        log.info("llama.cpp's tools built in %.0f s: %s", built["build_s"], entry / "bin")
        return entry

    def describe(self, entry: Path) -> str:
        return tools_details(entry)


def tools_details(entry: Path) -> str:
    """One line for `quantbench cache list` / `quantbench engines list` (empty for the cache's other
    llama.cpp entries, the converter's, which have no manifest)."""
    manifest = read_manifest(entry)
    if manifest.get("kind") != TOOLS_KIND:
        return ""
    built = manifest.get("built", {})
    commit = built.get("llama_cpp_commit") or "commit unknown"
    return (
        f"llama.cpp tools of {PACKAGE} {manifest.get('version')} (llama.cpp {commit}), built in "
        f"{built.get('build_s', 0):.0f} s: {entry / 'bin'}"
    )


LLAMA_CPP_TOOLS = LlamaCppTools()
