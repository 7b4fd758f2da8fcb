"""Quantize one checkpoint with gptqmodel in a child process.

A child process, because quantization holds the full-precision model, the calibration activations
and gptqmodel's worker threads: done inside the job, all of that would count in the job's peak
memory (which is reset before loading and must describe inference), and a first job that
quantizes would not be comparable with a later one that finds the checkpoint in the cache.

The parent writes a request (JSON) and the calibration windows; the child writes the checkpoint
into the request's output directory and a small result file (time, peak memory). Its output,
gptqmodel's progress bars included, goes to a log file the parent names in any error.

    python -m quantbench.backends.gptqmodel_quantize REQUEST.json
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from quantbench.errors import QuantbenchError
from quantbench.runtime.processes import die_with_parent


class QuantizationFailed(QuantbenchError):
    """The quantizing child (gptqmodel, auto-round) could not quantize the model; the log file says why."""


def peak_memory(device: str) -> dict[str, float | None]:
    """The child's lifetime peaks: it did nothing but this quantization."""
    from quantbench.measure.memory import MemoryTracker

    device_type, _, index = device.partition(":")
    peaks = MemoryTracker(device_type, int(index) if index else None).peaks()
    return {"peak_rss_gb": peaks["peak_rss_gb"], "peak_allocated_gb": peaks["peak_allocated_gb"]}


class ChildInputs(NamedTuple):
    """What every quantizing child reads from its request the same way."""

    windows: list[list[int]]  # the calibration windows, token ids
    load_kwargs: dict[str, Any]  # how the full-precision source loads: remote code, revision


def read_inputs(request: dict[str, Any]) -> ChildInputs:
    """The calibration windows and the source's loading keywords of a request (CalibratedBackend's)."""
    load_kwargs: dict[str, Any] = {"trust_remote_code": request["trust_remote_code"]}
    if request.get("revision"):
        load_kwargs["revision"] = request["revision"]
    return ChildInputs(json.loads(Path(request["calibration_file"]).read_text()), load_kwargs)


def quantize(request: dict[str, Any]) -> dict[str, Any]:
    """Load the full-precision model, calibrate, quantize and save: the child's whole job."""
    import torch
    from gptqmodel import AWQConfig, GPTQConfig, GPTQModel

    config_class = {"gptq": GPTQConfig, "awq": AWQConfig}[request["method"]]
    knobs = {key: value for key, value in request["knobs"].items() if value is not None}
    quantize_config = config_class(
        bits=request["bits"],
        group_size=request["group_size"],
        # gptqmodel parks finished layers on disk while it works; inside quantbench's cache, not /tmp.
        offload_to_disk_path=request["offload_dir"],
        **knobs,
    )
    windows, load_kwargs = read_inputs(request)
    calibration = [{"input_ids": window, "attention_mask": [1] * len(window)} for window in windows]

    torch.manual_seed(int(request["seed"]))  # for determinism of any random choice gptqmodel makes
    started = time.perf_counter()
    model = GPTQModel.load(request["source"], quantize_config, device=request["device"], **load_kwargs)
    model.quantize(calibration, batch_size=1)
    model.save(request["output_dir"])
    return {"quantize_s": time.perf_counter() - started, **peak_memory(request["device"])}


def main(argv: list[str] | None = None, quantize_with: Callable[[dict[str, Any]], dict[str, Any]] = quantize) -> int:
    """A child's whole life: read the request, quantize with `quantize_with`, write the result file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    request = json.loads(Path(argv[0]).read_text())
    result = quantize_with(request)
    Path(request["result_file"]).write_text(json.dumps(result))
    return 0


def _last_error_line(log_file: Path) -> str:
    """The last line that looks like an exception in the child's log (progress bars are noise)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):
        text = line.strip()
        if text and ("Error" in text or "Exception" in text) and not text.startswith("File "):
            return text[:300]
    return next((line.strip()[:300] for line in reversed(lines) if line.strip()), "empty log")


def run_quantization(
    request: dict[str, Any],
    scratch: Path,
    env: dict[str, str],
    module: str = "quantbench.backends.gptqmodel_quantize",
    engine: str = "gptqmodel",
) -> dict[str, Any]:
    """Run the child (`python -m <module>`, whose main reads the request and writes the result file)
    on `request`; its result, or QuantizationFailed naming the log file."""
    scratch = Path(scratch)
    request_file = scratch / "request.json"
    request_file.write_text(json.dumps(request, indent=2))
    log_file = scratch / "quantize.log"
    with open(log_file, "w") as log:
        completed = subprocess.run(
            [sys.executable, "-m", module, str(request_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            # gptqmodel writes per-layer logs into ./logs: inside the scratch directory, not the user's cwd.
            cwd=scratch,
            check=False,
            # Killed with the job's process however that ends (a stopped sweep, a dead warm worker):
            # a quantization left running would hold the cores and the memory of the next jobs.
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
    result_file = Path(request["result_file"])
    if completed.returncode != 0 or not result_file.is_file():
        raise QuantizationFailed(
            f"{engine} failed to {request['method']}-quantize {request['source']} "
            f"(exit {completed.returncode}): {_last_error_line(log_file)}; full log: {log_file}"
        )
    return json.loads(result_file.read_text())


@contextmanager
def scratch_directory(cache_dir: Path, label: str) -> Iterator[Path]:
    """Calibration file, gptqmodel's disk offload and the child's log, inside quantbench's cache.

    Removed on success; on failure only the log is kept (the error names it) and the offloaded
    layers are deleted.
    """
    scratch = Path(cache_dir) / "tmp" / f"quantize-{label}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    try:
        yield scratch
    except BaseException:
        for path in scratch.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.name != "quantize.log":
                path.unlink(missing_ok=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
