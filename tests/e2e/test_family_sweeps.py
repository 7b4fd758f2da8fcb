"""One sweep over the decoder, encoder-decoder (T5) and multimodal (PaliGemma) families, and a
multimodal job on a malformed image; every model is a random-init tiny one built on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from quantbench.collect.sweeps import METRIC_COLUMNS

TINY_IMAGE_TOKENS = 16  # tiny-paligemma: (64 px / 16 px patches)^2


def write_prompts(folder: Path, lines: list[str]) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# ~50 s on 2 cores; tests/families/ covers each family's batch and generation by default.
@pytest.mark.slow
def test_sweep_over_three_families_two_precisions_two_batches(tmp_path, run_quantbench):
    sweep = run_quantbench(
        ["-m", "model=tiny-llama,tiny-t5,tiny-paligemma", "precision=fp32,nf4", "batch=1,2", "bench=quick"], tmp_path
    )
    frame = pl.read_parquet(sweep / "summary.parquet")
    assert frame.height == 12
    assert frame["status"].to_list() == ["ok"] * 12, frame.select("model", "precision", "batch", "reason")
    # one table for all three families: the same metric columns, filled for every row
    for column in METRIC_COLUMNS:
        assert frame[column].null_count() == 0, column
    assert sorted(frame["family"].unique().to_list()) == ["decoder", "encoder-decoder", "multimodal"]
    for (model, batch), rows in frame.group_by("model", "batch"):
        assert rows.height == 2
        # greedy, min == max new tokens: both precisions generate exactly batch * 8 tokens
        assert rows["generated_tokens_per_iteration"].unique().to_list() == [batch * 8], (model, batch)
        assert rows["input_tokens_per_iteration"].n_unique() == 1, (model, batch)
    paligemma = frame.filter(pl.col("model") == "tiny-paligemma")
    # image tokens are input: each sample brings its 16 on top of the text
    assert (paligemma["input_tokens_per_iteration"] > paligemma["batch"] * TINY_IMAGE_TOKENS).all()
    assert (frame["ttft_p50_ms"] > 0).all() and (frame["tpot_p50_ms"] > 0).all()


def test_a_multimodal_job_on_a_malformed_image_fails_naming_the_file(tmp_path, run_quantbench):
    data = tmp_path / "vqa"
    data.mkdir()
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    prompts = write_prompts(data, [json.dumps({"image": "corrupt.png", "prompt": "caption en"})])
    sweep = run_quantbench(
        ["-m", "model=tiny-paligemma", "precision=fp32", "bench=quick", "dataset=images", f"dataset.path={prompts}"],
        tmp_path,
    )
    result = json.loads((sweep / "0" / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["reason"].startswith("DatasetError: image file ") and str(data / "corrupt.png") in result["reason"]
    assert "\n" not in result["reason"]
