"""The GGUF cache: `<cache_dir>/gguf/<model>-<type>-<key>/model.gguf`, made once, reused by every job.

The key hashes the model's weights (fingerprint and revision), the GGUF type and the
llama-cpp-python version (its converter and quantizer decide the bytes). The f32 file is the
converter's output and the source of every other type, so a sweep over types converts once.
Each entry holds `quantbench.json`, written last: what it was made from and how long it took
(the cache's entry mechanism, quantbench/cache.py, shared with the quantized checkpoints).
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from quantbench.cache import CacheRecipe, atomic_directory, entry_path, is_usable, read_manifest, write_manifest
from quantbench.errors import JobSkipped
from quantbench.gguf.binding import binding_version, import_binding
from quantbench.gguf.converter import convert_to_gguf, converter_dir
from quantbench.gguf.files import describe_file
from quantbench.gguf.types import CONVERTED_TYPE, file_type_constant

if TYPE_CHECKING:
    from quantbench.models.source import ModelSpec

log = logging.getLogger("quantbench")

GGUF_DIR = "gguf"
GGUF_FILE = "model.gguf"
# Bump when the way a file is made changes, so old entries are not reused.
GGUF_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GgufRecipe(CacheRecipe):
    kind: ClassVar[str] = GGUF_DIR

    model_name: str
    model_fingerprint: str
    revision: str | None
    file_type: str
    llama_cpp_version: str

    def key_payload(self) -> dict[str, Any]:
        return {
            "format": GGUF_FORMAT_VERSION,
            "model": self.model_fingerprint,
            "revision": self.revision,
            "file_type": self.file_type,
            "llama_cpp_python": self.llama_cpp_version,
        }

    def label(self) -> str:
        return f"{self.model_name}-{self.file_type}"


def recipe_for(spec: ModelSpec, file_type: str) -> GgufRecipe:
    return GgufRecipe(spec.name, spec.fingerprint, spec.revision, file_type, binding_version())


def gguf_file(spec: ModelSpec, file_type: str, cache_dir: Path, threads: int) -> tuple[Path, dict[str, Any]]:
    """The cached GGUF file of this model and type (made on a miss) and quantize_s / cache_hit."""
    if not spec.is_local:
        raise JobSkipped(
            f"model '{spec.name}' is a hub id; the llama.cpp converter needs a local checkpoint (model=local)"
        )
    recipe = recipe_for(spec, file_type)
    entry = entry_path(cache_dir, recipe)
    if is_usable(entry):
        log.info("GGUF %s of %s found in the cache: %s", file_type, spec.name, entry)
        return entry / GGUF_FILE, {"quantize_s": 0.0, "cache_hit": True}
    started = time.perf_counter()
    source = None if file_type == CONVERTED_TYPE else gguf_file(spec, CONVERTED_TYPE, cache_dir, threads)[0]
    with atomic_directory(entry) as directory:
        if source is None:
            log.info(
                "converting %s to an f32 GGUF with llama.cpp's converter (once; later jobs reuse %s)", spec.name, entry
            )
            convert_to_gguf(
                converter_dir(cache_dir, recipe.llama_cpp_version),
                Path(spec.load_path),
                directory / GGUF_FILE,
                directory / "convert.log",
            )
        else:
            log.info(
                "quantizing %s to GGUF %s with llama.cpp's quantizer (once; later jobs reuse %s)",
                spec.name,
                file_type,
                entry,
            )
            quantize_gguf(source, directory / GGUF_FILE, file_type, threads)
        # What the person waiting pays for this file: the f32 conversion too, when this job made it.
        quantize_s = time.perf_counter() - started
        built = {
            "quantize_s": quantize_s,
            "source": None if source is None else str(source),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_manifest(directory, recipe, built)  # last: a manifest means a complete file
    return entry / GGUF_FILE, {"quantize_s": quantize_s, "cache_hit": False}


def quantize_gguf(source: Path, output: Path, file_type: str, threads: int) -> None:
    llama_cpp = import_binding()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_type_constant(llama_cpp, file_type)
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(output).encode(), ctypes.byref(params))
    if status != 0 or not output.is_file():
        raise JobSkipped(
            f"llama.cpp's quantizer could not make GGUF type {file_type} of this model (llama_model_quantize returned "
            f"{status}; its log above says why); choose another type"
        )


def gguf_details(entry: Path) -> str:
    """One line for `quantbench cache list`: the type, what the file holds and what made it."""
    manifest = read_manifest(entry)
    if not manifest:
        return "no manifest"
    try:
        described = describe_file(entry / GGUF_FILE)
    except (OSError, ValueError, KeyError) as error:
        return f"unreadable ({type(error).__name__})"
    built = manifest.get("built", {})
    return (
        f"GGUF {manifest.get('file_type')}, {described['bits_per_weight']:.2f} bits/weight, linear layers "
        f"{described['tensor_types']}, made in {float(built.get('quantize_s') or 'nan'):.0f} s, "
        f"llama-cpp-python {manifest.get('llama_cpp_python')}"
    )
