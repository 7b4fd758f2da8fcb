"""The GGUF cache: `<cache_dir>/gguf/<model>-<type>-<key>/model.gguf`, made once, reused by every job.

The key hashes the model's weights (fingerprint and revision), the GGUF type and the
llama-cpp-python version (its converter and quantizer decide the bytes). The f32 file is the
converter's output and the source of every other type, so a sweep over types converts once.
Each entry holds `quantbench.json`, written last: what it was made from and how long it took
(the cache's entry mechanism, quantbench/cache.py, shared with the quantized checkpoints).

The importance-matrix types (iq4_xs, ...) are made by llama.cpp's own `llama-quantize --imatrix`
from the same f32 file and the importance matrix (quantbench/gguf/imatrix.py, an entry of its own in
the same directory); their key adds the matrix's key and llama-quantize's version.
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from quantbench.atomic import write_json_atomic
from quantbench.cache import (
    MANIFEST_FILE,
    ModelRecipe,
    atomic_directory,
    entry_path,
    is_usable,
    read_manifest,
    write_manifest,
)
from quantbench.errors import JobSkipped
from quantbench.gguf.binding import binding_version, import_binding
from quantbench.gguf.converter import convert_to_gguf, converter_dir
from quantbench.gguf.files import GGUF_DIR, describe_file
from quantbench.gguf.imatrix import (
    ARTEFACT,
    CalibrationText,
    ImportanceMatrix,
    imatrix_details,
    importance_matrix,
    quantize_with_imatrix,
)
from quantbench.gguf.tools import tool_path, tool_version
from quantbench.gguf.types import CONVERTED_TYPE, file_type_constant, needs_importance_matrix

if TYPE_CHECKING:
    from quantbench.models.source import ModelSpec

log = logging.getLogger("quantbench")

GGUF_FILE = "model.gguf"
FILE_FACTS = "file"  # the manifest's record of describe_file, under "built"
# Bump when the way a file is made changes, so old entries are not reused.
GGUF_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GgufRecipe(ModelRecipe):
    kind: ClassVar[str] = GGUF_DIR

    file_type: str
    llama_cpp_version: str

    def key_payload(self) -> dict[str, Any]:
        return {
            "format": GGUF_FORMAT_VERSION,
            **self.model_payload(),
            "file_type": self.file_type,
            "llama_cpp_python": self.llama_cpp_version,
        }

    def label(self) -> str:
        return f"{self.model_name}-{self.file_type}"


@dataclass(frozen=True)
class GgufImatrixRecipe(GgufRecipe):
    """An importance-matrix type: made by llama-quantize with that matrix."""

    importance_matrix: str  # the matrix entry's key (quantbench/gguf/imatrix.py)
    tools_version: str  # llama.cpp's tools' build that runs llama-quantize (one build, one version for all)

    def key_payload(self) -> dict[str, Any]:
        return {
            **super().key_payload(),
            "importance_matrix": self.importance_matrix,
            "llama_cpp": self.tools_version,
        }


def recipe_for(
    spec: ModelSpec, file_type: str, matrix: ImportanceMatrix | None = None, cache_dir: Path | None = None
) -> GgufRecipe:
    if matrix is None:
        return GgufRecipe(spec.name, spec.fingerprint, spec.revision, file_type, binding_version())
    return GgufImatrixRecipe(
        spec.name,
        spec.fingerprint,
        spec.revision,
        file_type,
        binding_version(),
        matrix.key,
        tool_version(tool_path(cache_dir, "llama-imatrix")),  # llama-quantize has no --version
    )


def gguf_file(
    spec: ModelSpec,
    file_type: str,
    cache_dir: Path,
    threads: int,
    calibration: CalibrationText | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The cached GGUF file of this model and type (made on a miss) and quantize_s / cache_hit; an
    importance-matrix type needs its calibration text, and adds the matrix's facts."""
    if not spec.is_local:
        raise JobSkipped(
            f"model '{spec.name}' is a hub id; the llama.cpp converter needs a local checkpoint (model=local)"
        )
    started = time.perf_counter()
    matrix = None
    if needs_importance_matrix(file_type):
        if calibration is None:
            raise ValueError(f"GGUF type {file_type} is made with an importance matrix: give its calibration text")
        converted = gguf_file(spec, CONVERTED_TYPE, cache_dir, threads)[0]
        matrix = importance_matrix(spec, converted, calibration, cache_dir, threads, binding_version())
    facts = {} if matrix is None else matrix.facts
    recipe = recipe_for(spec, file_type, matrix, cache_dir)
    entry = entry_path(cache_dir, recipe)
    if is_usable(entry):
        log.info("GGUF %s of %s found in the cache: %s", file_type, spec.name, entry)
        return entry / GGUF_FILE, {"quantize_s": 0.0, "cache_hit": True, **facts, **file_facts(entry)}
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
            if matrix is None:
                quantize_gguf(source, directory / GGUF_FILE, file_type, threads)
            else:
                quantize_with_imatrix(cache_dir, source, directory / GGUF_FILE, file_type, matrix.path, threads)
        # What the person waiting pays for this file: the f32 conversion and the importance matrix too,
        # when this job made them.
        quantize_s = time.perf_counter() - started
        described = describe_file(directory / GGUF_FILE)
        built = {
            "quantize_s": quantize_s,
            "source": None if source is None else str(source),
            "importance_matrix": None if matrix is None else str(matrix.path),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            FILE_FACTS: described,
        }
        write_manifest(directory, recipe, built)  # last: a manifest means a complete file
    return entry / GGUF_FILE, {"quantize_s": quantize_s, "cache_hit": False, **facts, **described}


def file_facts(entry: Path) -> dict[str, Any]:
    """What the entry's file holds (describe_file): from its manifest, where the build stored it, since
    parsing the file again costs about 6 s of every GGUF job's load (SmolLM2-135M, 2 cores). An entry
    made before the manifest held it is parsed once and its manifest completed, for the next job."""
    manifest = read_manifest(entry)
    stored = manifest.get("built", {}).get(FILE_FACTS)
    if stored is not None:
        return stored
    described = describe_file(entry / GGUF_FILE)
    if manifest:
        try:  # an addition, written whole and atomically; a read-only cache just parses again next time
            write_json_atomic(
                entry / MANIFEST_FILE, {**manifest, "built": {**manifest.get("built", {}), FILE_FACTS: described}}
            )
        except OSError as error:
            log.debug("could not complete the manifest of %s: %s", entry, error)
    return described


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
    if manifest.get("artefact") == ARTEFACT:
        return imatrix_details(entry, manifest)
    try:
        described = file_facts(entry)
    except (OSError, ValueError, KeyError) as error:
        return f"unreadable ({type(error).__name__})"
    built = manifest.get("built", {})
    made_by = (
        f"llama-cpp-python {manifest.get('llama_cpp_python')}"
        if manifest.get("importance_matrix") is None
        else f"llama-quantize with importance matrix {manifest['importance_matrix']}, "
        f"llama.cpp {manifest.get('llama_cpp')}"
    )
    return (
        f"GGUF {manifest.get('file_type')}, {described['bits_per_weight']:.2f} bits/weight, linear layers "
        f"{described['tensor_types']}, made in {float(built.get('quantize_s') or 'nan'):.0f} s, {made_by}"
    )
