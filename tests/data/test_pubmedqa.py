"""The PubMedQA loader: a malformed or missing file is one line naming the file, and the test split
and prompt are the ones quality scoring uses (a bad file in a job: tests/e2e/test_errors.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from quantbench.data.pubmedqa import PubMedQA
from quantbench.errors import DatasetError


def pubmedqa_config(path, **extra):
    return OmegaConf.create(
        {
            "name": "pubmedqa",
            "loader": "pubmedqa",
            "path": str(path),
            "hub_id": None,
            "split": extra.pop("split", "all"),
            "limit": None,
            "chat_template": False,
            "test_ids_path": None,
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a", "b"]', "expected a non-empty object"),
        ('{"1": {"QUESTION": "q?"}}', "entry '1' lacks CONTEXTS, final_decision"),
        ('{"1": {"QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}', "final_decision 'perhaps'"),
    ],
)
def test_malformed_pubmedqa_file_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "ori_pqal.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as error:
        PubMedQA().load(pubmedqa_config(path))
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_pubmedqa_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found: .*nowhere.json"):
        PubMedQA().load(pubmedqa_config(tmp_path / "nowhere.json"))


def test_pubmedqa_test_split_and_prompt(shared_data):
    path = shared_data / "pubmedqa" / "ori_pqal.json"
    test = PubMedQA().load(pubmedqa_config(path, split="test"))
    assert len(test) == 500
    assert len(PubMedQA().load(pubmedqa_config(path, split="all"))) == 1000
    train = PubMedQA().load(pubmedqa_config(path, split="train"))
    assert len(train) == 500 and not {s.id for s in train} & {s.id for s in test}
    sample = test[0]
    assert sample.text.startswith("Abstract: ") and sample.text.endswith("\nAnswer:")
    assert sample.answer in {"yes", "no", "maybe"}
