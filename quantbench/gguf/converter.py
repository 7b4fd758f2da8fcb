"""llama.cpp's own converter (`convert_hf_to_gguf.py`), taken from the source distribution of the
installed llama-cpp-python, and a run of it.

The installed wheel holds only the compiled libraries; the converter, its `conversion/` package and
the `gguf-py` it is written against ship in the sdist (`vendor/llama.cpp/`). quantbench extracts those
three once per llama-cpp-python version into `<cache_dir>/llama.cpp/converter-<version>/`, from
the sources gguf/sdist.py provides (QUANTBENCH_LLAMA_CPP_SOURCE, else the sdist from PyPI).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from quantbench.cache import atomic_directory, is_complete
from quantbench.errors import QuantbenchError
from quantbench.gguf.binding import PACKAGE
from quantbench.gguf.sdist import (
    LLAMA_CPP_DIR,
    SOURCE_ENV,
    VENDOR_PREFIX,
    configured_source,
    download_sdist,
    extract_llama_cpp,
    llama_cpp_root,
)

SCRIPT = "convert_hf_to_gguf.py"
# What the converter needs of the llama.cpp tree, nothing else (the sdist is 77 MB).
CONVERTER_PARTS = (SCRIPT, "conversion", "gguf-py", "LICENSE")


class ConverterUnavailable(QuantbenchError):
    """llama.cpp's converter cannot be obtained or refused the model; the reason says which."""


def converter_dir(cache_dir: Path, version: str) -> Path:
    """The directory holding convert_hf_to_gguf.py for this llama-cpp-python version, extracted once."""
    entry = Path(cache_dir) / LLAMA_CPP_DIR / f"converter-{version}"
    if is_complete(entry) and (entry / SCRIPT).is_file():
        return entry
    source = configured_source()
    with atomic_directory(entry) as directory:
        if source:
            _copy_converter(source, directory)
        else:
            with tempfile.TemporaryDirectory(prefix="quantbench-sdist-") as scratch:
                _copy_converter(download_sdist(version, Path(scratch), "llama.cpp's converter"), directory)
    return entry


def _copy_converter(source: Path, directory: Path) -> None:
    if source.is_dir():
        root = llama_cpp_root(source)
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
    if SCRIPT not in extract_llama_cpp(source, directory, CONVERTER_PARTS):
        raise ConverterUnavailable(f"{source} holds no {VENDOR_PREFIX}{SCRIPT}; is it the {PACKAGE} sdist?")


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
