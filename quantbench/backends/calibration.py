"""Calibration text for gptq and awq: seeded token windows from a dataset option or a text file.

`precision.calibration.dataset` names a `dataset` option (builtin, pubmedqa, wikitext2, or one a
plugin adds), read by that option's own loader, or the path of a plain text file (anything with a
`/` in it or ending in `.txt`). The texts are shuffled with the seed, joined into one token stream
(end-of-sequence between texts) and cut into windows of `seq_len` tokens, of which `n_samples` are
picked with the seed: the usual GPTQ recipe of fixed-length windows of real text.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from quantbench.config.compose import compose_option
from quantbench.errors import QuantbenchError

if TYPE_CHECKING:
    from quantbench.data.base import Sample

log = logging.getLogger("quantbench")


class CalibrationError(QuantbenchError):
    """A calibration setting that names no dataset option or file, or yields no text."""


def is_text_file_setting(dataset: str) -> bool:
    return "/" in dataset or dataset.endswith(".txt")


def dataset_config(calibration: DictConfig) -> DictConfig:
    """The dataset option named by the calibration setting, with its path replaced when one is given."""
    from hydra.errors import HydraException

    name = str(calibration.dataset)
    try:
        config = compose_option("dataset", name)
    except HydraException:
        raise CalibrationError(
            f"calibration dataset '{name}' is neither a dataset option nor a text file path; "
            "use an option such as builtin, pubmedqa or wikitext2, or a path to a .txt file"
        ) from None
    config = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    if calibration.path is not None:
        config.path = str(calibration.path)
    if calibration.get("split") is not None:
        config.split = str(calibration.split)
    if config.get("path"):
        # Absolute, so the same setting means the same file from any working directory.
        config.path = str(Path(config.path).expanduser().resolve())
    return config


def calibration_source(calibration: DictConfig) -> dict[str, Any]:
    """What the calibration text is read from, as JSON-able data for the checkpoint's cache key."""
    dataset = str(calibration.dataset)
    if is_text_file_setting(dataset):
        path = Path(dataset).expanduser().resolve()
        if not path.is_file():
            raise CalibrationError(
                f"calibration text file not found: {path}; set precision.calibration.dataset to an existing .txt file"
            )
        stat = path.stat()
        return {"file": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"option": dataset, "config": OmegaConf.to_container(dataset_config(calibration), resolve=True)}


def calibration_texts(source: dict[str, Any]) -> list[str]:
    if "file" in source:
        text = Path(source["file"]).read_text(encoding="utf-8", errors="replace")
        return [text]
    from quantbench.config import registry

    config = OmegaConf.create(source["config"])
    samples: list[Sample] = registry.datasets().get(config.loader).load(config)
    return [sample.text for sample in samples if sample.text]


def calibration_windows(texts: list[str], tokenizer: Any, n_samples: int, seq_len: int, seed: int) -> list[list[int]]:
    """Up to `n_samples` disjoint windows of `seq_len` tokens, chosen with `seed`.

    A corpus shorter than n_samples * seq_len gives every window it has (fewer samples, same
    length); one shorter than a single window gives itself as one window.
    """
    if n_samples < 1 or seq_len < 1:
        raise CalibrationError(f"calibration needs n_samples >= 1 and seq_len >= 1, got {n_samples} and {seq_len}")
    rng = random.Random(seed)
    order = list(texts)
    rng.shuffle(order)
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for text in order:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + separator
    if not stream:
        raise CalibrationError("the calibration dataset has no text; choose another precision.calibration.dataset")
    n_windows = len(stream) // seq_len
    if n_windows == 0:
        return [stream]
    chosen = sorted(rng.sample(range(n_windows), min(n_samples, n_windows)))
    if len(chosen) < n_samples:
        log.warning(
            "calibration text has only %d tokens: %d windows of %d tokens instead of %d; for a real model calibrate "
            "on more text (precision.calibration.dataset=<a dataset option or a .txt file>, see docs/quantization.md)",
            len(stream),
            len(chosen),
            seq_len,
            n_samples,
        )
    return [stream[index * seq_len : (index + 1) * seq_len] for index in chosen]
