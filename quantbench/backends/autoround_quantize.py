"""Quantize one checkpoint with Intel AutoRound in a child process (see gptqmodel_quantize for why a child).

The request is the one CalibratedBackend writes for gptqmodel (source, bits, group size, knobs,
calibration windows, output directory); the knobs carry AutoRound's own settings (`sym`, `iters`,
`batch_size`). The calibration windows are handed to AutoRound as token tensors: given a dataset
name instead, it would download one from the hub.

    python -m quantbench.backends.autoround_quantize REQUEST.json
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from quantbench.backends.gptqmodel_quantize import main, peak_memory, read_inputs

# The format transformers' AutoRoundConfig loads (packed int weights, auto-round's own kernels).
SAVE_FORMAT = "auto_round"


def quantize(request: dict[str, Any]) -> dict[str, Any]:
    """Load the full-precision model, tune the rounding block by block, save: the child's whole job."""
    import torch
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM, AutoTokenizer

    windows, load_kwargs = read_inputs(request)
    # AutoRound drops windows shorter than seqlen: the shortest one sets it (all are equal but a
    # corpus shorter than one window).
    seq_len = min(len(window) for window in windows)
    calibration = [torch.tensor([window[:seq_len]]) for window in windows]
    knobs = request["knobs"]

    torch.manual_seed(int(request["seed"]))
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(request["source"], dtype=torch.float32, **load_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(request["source"], **load_kwargs)
    rounder = AutoRound(
        model,
        tokenizer,
        bits=request["bits"],
        group_size=request["group_size"],
        sym=bool(knobs["sym"]),
        iters=int(knobs["iters"]),
        dataset=calibration,
        nsamples=len(calibration),
        seqlen=seq_len,
        batch_size=min(int(knobs["batch_size"]), len(calibration)),
        device_map=request["device"],
        seed=int(request["seed"]),
    )
    # AutoRound names its own folder inside the directory it is given: export into a subfolder,
    # then move the checkpoint up into the output directory the cache entry expects.
    output = Path(request["output_dir"])
    export = output / "autoround-export"
    _, folders = rounder.quantize_and_save(str(export), format=SAVE_FORMAT)
    saved = Path(folders[0] if isinstance(folders, (list, tuple)) else folders)
    for path in saved.iterdir():
        shutil.move(str(path), output / path.name)
    shutil.rmtree(export, ignore_errors=True)
    return {"quantize_s": time.perf_counter() - started, **peak_memory(request["device"])}


if __name__ == "__main__":
    sys.exit(main(quantize_with=quantize))
