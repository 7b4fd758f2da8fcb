"""quality.data_dir is $QUANTBENCH_DATA, else ~/.cache/quantbench/data, wherever quantbench runs:
the same perplexity from the repository root and from any other directory, and a file missing
offline is one line naming the path and the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ["model=tiny-llama", "precision=fp32", "bench=quick", "quality=[ppl]", "quality.context_tokens=64",
           "quality.stride=48", "quality.max_tokens=300"]


def only_result(run_dir: Path) -> dict:
    [result] = run_dir.rglob("result.json")
    return json.loads(result.read_text())


def test_the_default_is_the_variable_else_a_per_user_folder(compose_config, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_DATA", "/data/elsewhere")
    assert compose_config(["quality=[ppl]"]).quality.text.path == "/data/elsewhere/wikitext-2/test.txt"
    monkeypatch.delenv("QUANTBENCH_DATA")
    assert compose_config(["quality=[pubmedqa]"]).quality.pubmedqa.path == "~/.cache/quantbench/data/pubmedqa/ori_pqal.json"


def test_the_same_perplexity_from_the_repository_and_from_elsewhere(run_quantbench, tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("QUANTBENCH_DATA", str(shared_data))
    monkeypatch.chdir(ROOT)
    at_root = only_result(run_quantbench(QUALITY, tmp_path / "root"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    away = only_result(run_quantbench(QUALITY, tmp_path / "away"))
    assert at_root["status"] == away["status"] == "ok", (at_root["reason"], away["reason"])
    assert away["metrics"]["ppl"] == at_root["metrics"]["ppl"] and away["metrics"]["ppl_n_tokens"] == 299


def test_a_missing_file_offline_is_one_line_naming_the_path_and_the_variable(run_quantbench, tmp_path, monkeypatch):
    monkeypatch.delenv("QUANTBENCH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a user whose data folder is empty
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    result = only_result(run_quantbench(["-m", *QUALITY], tmp_path / "out"))  # a sweep: the failed row, exit 0
    assert result["status"] == "failed"
    reason = result["reason"]
    expected = tmp_path / "home" / ".cache" / "quantbench" / "data" / "wikitext-2" / "test.txt"
    assert "\n" not in reason and str(expected) in reason and "QUANTBENCH_DATA" in reason and "HF_HUB_OFFLINE" in reason


def test_a_hub_out_of_reach_is_the_same_one_line_without_the_loaders_retries(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from quantbench.errors import DatasetError
    from quantbench.quality.sources import read_samples

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    missing = tmp_path / "data" / "wikitext-2" / "test.txt"
    node = OmegaConf.create({"name": "wikitext2", "loader": "wikitext2", "path": str(missing), "hub_id": "wikitext",
                             "hub_config": "wikitext-2-raw-v1", "split": "test"})
    with pytest.raises(DatasetError) as raised:
        read_samples(node)
    reason = str(raised.value)
    assert "\n" not in reason and str(missing) in reason and "QUANTBENCH_DATA" in reason and "http://127.0.0.1:9 is out of reach" in reason
