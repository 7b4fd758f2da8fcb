"""The importance matrix of the iq types: computed once by llama.cpp's llama-imatrix, cached beside
the GGUF files, and handed to `llama-quantize --imatrix`.

llama-imatrix runs the model's f32 GGUF over calibration text and sums, for every linear layer's
input column, the squared activations it sees; llama-quantize spends a type's few bits where those
are large. The text is the one gptq and awq calibrate on: the same token windows
(`precision.calibration`: dataset, `n_samples` windows of `seq_len` tokens, `seed`; the caller
computes them, quantbench/backends/gguf.py), each decoded to text and written one after the other,
and llama-imatrix cuts the text it tokenizes into chunks of `seq_len` tokens (`-c`), so chunk i is
window i. That holds where llama.cpp's tokenizer reads the joined text back as the same tokens; where
a window's edge is re-tokenized differently (a word cut at the window's end joined to the next
window's start) the chunks shift by a token or so. The manifest records how many chunks are exactly
their window (`windows_identical`). A model whose vocabulary adds BOS gets it at the start of every
chunk (llama-imatrix puts it there, in place of the chunk's first token).

The entry is `<cache_dir>/gguf/<model>-imatrix-<key>/`: the key hashes the model's weights, the
calibration settings, the converter that made the f32 file and the llama.cpp build; it holds the
matrix, the text it was computed from, llama-imatrix's log and the manifest (text sha256, windows,
tokens per window, chunks, llama.cpp version), written last.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from quantbench.cache import ModelRecipe, atomic_directory, entry_path, is_usable, read_manifest, write_manifest
from quantbench.errors import JobSkipped
from quantbench.gguf.files import GGUF_DIR
from quantbench.gguf.tools import tool_path, tool_version

if TYPE_CHECKING:
    from quantbench.models.source import ModelSpec

log = logging.getLogger("quantbench")

IMATRIX_FILE = "imatrix.gguf"
TEXT_FILE = "calibration.txt"
LOG_FILE = "imatrix.log"
ARTEFACT = "importance matrix"  # the manifest's `artefact`: tells this entry from a GGUF file's
FAILURE_WORDS = ("error", "you need", "failed to")  # how llama-imatrix and llama-quantize say why they stop
# Bump when the way a matrix is made changes, so old entries are not reused.
IMATRIX_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CalibrationText:
    """What the matrix is computed from: the calibration settings (the key's part, as gptq's) and,
    called on a cache miss only, the token windows and the tokenizer's decoding of one."""

    settings: dict[str, Any]  # source, n_samples, seq_len, seed
    windows: Callable[[], list[list[int]]]
    decode: Callable[[list[int]], str]

    @property
    def seq_len(self) -> int:
        return int(self.settings["seq_len"])


@dataclass(frozen=True)
class ImatrixRecipe(ModelRecipe):
    kind: ClassVar[str] = GGUF_DIR

    calibration: dict[str, Any]
    converter_version: str  # llama-cpp-python's: its converter made the f32 file the matrix is computed on
    llama_cpp_version: str  # llama-imatrix's `--version`

    def key_payload(self) -> dict[str, Any]:
        return {
            "format": IMATRIX_FORMAT_VERSION,
            "artefact": ARTEFACT,
            **self.model_payload(),
            "calibration": self.calibration,
            "llama_cpp_python": self.converter_version,
            "llama_cpp": self.llama_cpp_version,
        }

    def label(self) -> str:
        return f"{self.model_name}-imatrix"


@dataclass(frozen=True)
class ImportanceMatrix:
    path: Path
    key: str
    facts: dict[str, Any]  # for the job's row: imatrix_s, imatrix_cache_hit, its windows and chunks


def importance_matrix(
    spec: ModelSpec, source: Path, calibration: CalibrationText, cache_dir: Path, threads: int, converter_version: str
) -> ImportanceMatrix:
    """The cached matrix of this model and calibration text, computed on the f32 GGUF `source` on a miss."""
    program = tool_path(cache_dir, "llama-imatrix")
    recipe = ImatrixRecipe(
        spec.name, spec.fingerprint, spec.revision, calibration.settings, converter_version, tool_version(program)
    )
    entry = entry_path(cache_dir, recipe)
    if is_usable(entry):
        log.info("importance matrix of %s found in the cache: %s", spec.name, entry)
        return ImportanceMatrix(entry / IMATRIX_FILE, recipe.key, _facts(entry, cache_hit=True))
    started = time.perf_counter()
    windows = calibration.windows()
    texts = [calibration.decode(window) for window in windows]
    with atomic_directory(entry) as directory:
        text = "".join(texts)
        # llama-imatrix refuses a text of fewer than two chunks even when --chunks asks for one: a single
        # window (a short calibration text) is followed by a copy of itself, which --chunks leaves unread.
        (directory / TEXT_FILE).write_text(text if len(windows) > 1 else text + text, encoding="utf-8")
        log.info(
            "computing the importance matrix of %s with llama-imatrix on %d calibration windows of %d tokens "
            "(once; later jobs reuse %s)",
            spec.name,
            len(windows),
            calibration.seq_len,
            entry,
        )
        command = [
            str(program),
            "-m",
            str(source),
            "-f",
            str(directory / TEXT_FILE),
            "-o",
            str(directory / IMATRIX_FILE),
            "-c",
            str(calibration.seq_len),  # one chunk per window
            "-b",
            str(calibration.seq_len),  # llama-imatrix needs a batch that is a multiple of the chunk or below it
            "--chunks",
            str(len(windows)),
            "-t",
            str(threads),
            "--parse-special",  # the end-of-sequence token between two texts stays one token
            "--no-ppl",
        ]
        chunks = _run_logged(command, directory / LOG_FILE, "llama-imatrix could not compute the importance matrix")
        built = {
            "imatrix_s": time.perf_counter() - started,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),  # the windows' text, read once
            "calibration_windows": len(windows),
            "tokens_per_window": calibration.seq_len,
            "calibration_tokens": sum(map(len, windows)),
            "chunks": chunks,
            "windows_identical": _windows_identical(source, text, windows, calibration.seq_len),
            "command": " ".join(command).replace(str(directory), str(entry)),  # as the entry's paths read
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_manifest(directory, recipe, built)  # last: a manifest means a complete entry
    return ImportanceMatrix(entry / IMATRIX_FILE, recipe.key, _facts(entry, cache_hit=False))


def _run_logged(command: list[str], log_file: Path, failure: str) -> int | None:
    """Run a llama.cpp program with its output in `log_file`; JobSkipped quoting its error when it fails.
    Returns the chunks it says it computes over, where it says so."""
    with open(log_file, "w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT)
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    if done.returncode != 0:
        # The first error line is the cause: llama-quantize says why ("failed to quantize: <reason>") and
        # then only that it failed ("main: failed to quantize model from ...").
        errors = [line for line in lines if any(word in line.lower() for word in FAILURE_WORDS)]
        said = (errors or lines[-1:] or ["no output"])[0]
        raise JobSkipped(f"{failure}: {said} (exit {done.returncode}; log: {log_file.name} in the cache entry)")
    for line in lines:
        if "computing over" in line and "chunks" in line:
            return int(line.split("computing over", 1)[1].split()[0])
    return None


def _windows_identical(source: Path, text: str, windows: list[list[int]], seq_len: int) -> int:
    """How many of llama-imatrix's chunks are exactly their calibration window: the text tokenized as
    llama-imatrix does (llama.cpp's tokenizer in the file, BOS added where the vocabulary adds it,
    special tokens parsed), cut every seq_len tokens, against the windows joined (after that BOS)."""
    from quantbench.gguf.binding import import_binding

    llama_cpp = import_binding()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(source).encode(), params)
    if not model:
        return 0
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        encoded = text.encode("utf-8")
        size = len(encoded) + 16
        buffer = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(vocab, encoded, len(encoded), buffer, size, True, True)
        tokens = list(buffer[: max(n, 0)])
        expected = ([llama_cpp.llama_vocab_bos(vocab)] if llama_cpp.llama_vocab_get_add_bos(vocab) else []) + [
            token for window in windows for token in window
        ]
    finally:
        llama_cpp.llama_model_free(model)
    return sum(
        tokens[i * seq_len : (i + 1) * seq_len] == expected[i * seq_len : (i + 1) * seq_len]
        for i in range(len(windows))
    )


def _facts(entry: Path, cache_hit: bool) -> dict[str, Any]:
    built = read_manifest(entry).get("built", {})
    return {
        "imatrix_s": 0.0 if cache_hit else built.get("imatrix_s"),
        "imatrix_cache_hit": cache_hit,
        "importance_matrix": entry.name,
        "imatrix_windows": built.get("calibration_windows"),
        "imatrix_tokens_per_window": built.get("tokens_per_window"),
        "imatrix_chunks": built.get("chunks"),
        "imatrix_windows_identical": built.get("windows_identical"),
    }


def quantize_with_imatrix(
    cache_dir: Path, source: Path, output: Path, file_type: str, matrix: Path, threads: int
) -> None:
    """`llama-quantize --imatrix MATRIX SOURCE OUTPUT TYPE THREADS`, its log beside the output."""
    from quantbench.gguf.types import IMPORTANCE_MATRIX_TYPES

    command = [
        str(tool_path(cache_dir, "llama-quantize")),
        "--imatrix",
        str(matrix),
        str(source),
        str(output),
        IMPORTANCE_MATRIX_TYPES[file_type],
        str(threads),
    ]
    _run_logged(command, output.parent / "quantize.log", f"llama-quantize could not make GGUF type {file_type}")
    if not output.is_file():
        raise JobSkipped(
            f"llama-quantize made no file for GGUF type {file_type} (log: quantize.log in the cache entry)"
        )


def imatrix_details(entry: Path, manifest: dict[str, Any]) -> str:
    """One line for `quantbench cache list`."""
    built = manifest.get("built", {})
    calibration = manifest.get("calibration", {})
    source = calibration.get("source", {})
    text = source.get("option") or source.get("file") or "?"
    return (
        f"importance matrix (iq types): {built.get('calibration_windows')} windows x {built.get('tokens_per_window')} "
        f"tokens of {text} (seed {calibration.get('seed')}, text sha256 {str(built.get('text_sha256'))[:12]}), "
        f"{built.get('chunks')} chunks, made in {float(built.get('imatrix_s') or 'nan'):.0f} s, "
        f"llama.cpp {manifest.get('llama_cpp')}"
    )
