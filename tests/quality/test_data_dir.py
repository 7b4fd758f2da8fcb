"""quality.data_dir is $QUANTBENCH_DATA, else ~/.cache/quantbench/data, and a hub out of reach is one
line naming the path and the variable (in real jobs: tests/e2e/test_data_dir_jobs.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf


def test_the_default_is_the_variable_else_a_per_user_folder(compose_config, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_DATA", "/data/elsewhere")
    assert compose_config(["quality=[ppl]"]).quality.text.path == "/data/elsewhere/wikitext-2/test.txt"
    monkeypatch.delenv("QUANTBENCH_DATA")
    assert (
        compose_config(["quality=[pubmedqa]"]).quality.pubmedqa.path
        == "~/.cache/quantbench/data/pubmedqa/ori_pqal.json"
    )


def test_a_hub_out_of_reach_is_the_same_one_line_without_the_loaders_retries(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from quantbench.errors import DatasetError
    from quantbench.quality.sources import read_samples

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    missing = tmp_path / "data" / "wikitext-2" / "test.txt"
    node = OmegaConf.create(
        {
            "name": "wikitext2",
            "loader": "wikitext2",
            "path": str(missing),
            "hub_id": "wikitext",
            "hub_config": "wikitext-2-raw-v1",
            "split": "test",
        }
    )
    with pytest.raises(DatasetError) as raised:
        read_samples(node)
    reason = str(raised.value)
    assert (
        "\n" not in reason
        and str(missing) in reason
        and "QUANTBENCH_DATA" in reason
        and "http://127.0.0.1:9 is out of reach" in reason
    )
