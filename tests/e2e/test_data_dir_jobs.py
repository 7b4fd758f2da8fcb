"""quality.data_dir in real jobs: the same perplexity from the repository root and from any other
directory, and a file missing offline is one line naming the path and the variable."""

from __future__ import annotations

from support import ROOT
from support.app import only_job

QUALITY = [
    "model=tiny-llama",
    "precision=fp32",
    "bench=quick",
    "quality=[ppl]",
    "quality.context_tokens=64",
    "quality.stride=48",
    "quality.max_tokens=300",
]


def test_the_same_perplexity_from_the_repository_and_from_elsewhere(run_quantbench, tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("QUANTBENCH_DATA", str(shared_data))
    monkeypatch.chdir(ROOT)
    at_root = only_job(run_quantbench(QUALITY, tmp_path / "root"))[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    away = only_job(run_quantbench(QUALITY, tmp_path / "away"))[0]
    assert at_root["status"] == away["status"] == "ok", (at_root["reason"], away["reason"])
    assert away["metrics"]["ppl"] == at_root["metrics"]["ppl"] and away["metrics"]["ppl_n_tokens"] == 299


def test_a_missing_file_offline_is_one_line_naming_the_path_and_the_variable(run_quantbench, tmp_path, monkeypatch):
    monkeypatch.delenv("QUANTBENCH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a user whose data folder is empty
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    result = only_job(run_quantbench(["-m", *QUALITY], tmp_path / "out"))[0]  # a sweep: the failed row, exit 0
    assert result["status"] == "failed"
    reason = result["reason"]
    expected = tmp_path / "home" / ".cache" / "quantbench" / "data" / "wikitext-2" / "test.txt"
    assert "\n" not in reason and str(expected) in reason and "QUANTBENCH_DATA" in reason and "HF_HUB_OFFLINE" in reason
