"""PubMedQA PQA-L: 1000 expert-labelled biomedical yes/no/maybe questions (MIT licence).

From a local `ori_pqal.json` (`dataset.path=...`) or from the hub (`qiaojin/PubMedQA`,
config `pqa_labeled`). `split=test` keeps the standard 500-question test split, the PMIDs
listed in `test_ground_truth.json` (by default the file beside `ori_pqal.json`); `split=train`
keeps the other 500 (for calibration data that the test split never sees); `split=all` all 1000.
Prompts follow lm-evaluation-harness: "Abstract: <contexts>\\nQuestion: <question>\\nAnswer:".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.data.base import Sample, expand_path
from quantbench.errors import DatasetError

if TYPE_CHECKING:
    from omegaconf import DictConfig

CHOICES = ("yes", "no", "maybe")
SPLITS = ("test", "train", "all")
TEST_IDS_FILE = "test_ground_truth.json"


def pubmedqa_prompt(contexts: list[str], question: str) -> str:
    abstract = "\n".join(contexts)  # as lm-evaluation-harness joins the abstract's sections
    return f"Abstract: {abstract}\nQuestion: {question}\nAnswer:"


def read_json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{what} file not found: {path}")
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{what} file {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{what} file {path} is not UTF-8 text ({error.reason})") from None


def _record(pmid: str, entry: Any, source: str) -> Sample:
    if not isinstance(entry, dict):
        raise DatasetError(f"PubMedQA file {source}: entry '{pmid}' is {type(entry).__name__}, expected an object")
    missing = [key for key in ("QUESTION", "CONTEXTS", "final_decision") if key not in entry]
    if missing:
        raise DatasetError(
            f"PubMedQA file {source}: entry '{pmid}' lacks {', '.join(missing)}; "
            "expected the PQA-L ori_pqal.json format"
        )
    contexts = entry["CONTEXTS"]
    if not isinstance(contexts, list) or not all(isinstance(text, str) for text in contexts):
        raise DatasetError(f"PubMedQA file {source}: entry '{pmid}' has CONTEXTS that is not a list of strings")
    answer = str(entry["final_decision"]).strip().lower()
    if answer not in CHOICES:
        raise DatasetError(
            f"PubMedQA file {source}: entry '{pmid}' has final_decision '{answer}', expected yes, no or maybe"
        )
    return Sample(
        id=str(pmid),
        text=pubmedqa_prompt(contexts, entry["QUESTION"]),
        answer=answer,
        meta={"question": entry["QUESTION"], "contexts": contexts},
    )


def _from_local(path: Path) -> dict[str, Any]:
    data = read_json_file(path, "PubMedQA")
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"PubMedQA file {path}: expected a non-empty object of PMID -> question entries")
    return data


def _from_hub(hub_id: str, split: str | None) -> dict[str, Any]:
    try:
        from datasets import load_dataset

        rows = load_dataset(hub_id, "pqa_labeled", split=split or "train")
    except Exception as error:
        raise DatasetError(
            f"cannot load PubMedQA '{hub_id}' from the Hugging Face hub ({type(error).__name__}); "
            "without network access set dataset.path=/path/to/ori_pqal.json"
        ) from error
    return {
        str(row["pubid"]): {
            "QUESTION": row["question"],
            "CONTEXTS": list(row["context"]["contexts"]),
            "final_decision": row["final_decision"],
        }
        for row in rows
    }


def _test_ids(config: DictConfig) -> set[str]:
    ids_path = config.get("test_ids_path")
    if ids_path is None:
        if not config.path:
            raise DatasetError(
                "PubMedQA split=test needs dataset.test_ids_path (test_ground_truth.json) when reading from the hub"
            )
        ids_path = expand_path(config.path).parent / TEST_IDS_FILE
    data = read_json_file(expand_path(ids_path), "PubMedQA test-split")
    if not isinstance(data, dict):
        raise DatasetError(f"PubMedQA test-split file {ids_path}: expected an object of PMID -> answer")
    return {str(pmid) for pmid in data}


class PubMedQA:
    name = "pubmedqa"
    description = "PubMedQA PQA-L yes/no/maybe questions (local ori_pqal.json or the hub)"

    def load(self, config: DictConfig) -> list[Sample]:
        split = config.split or "test"
        if split not in SPLITS:
            raise DatasetError(f"unknown PubMedQA split '{split}'; choose one of: {', '.join(SPLITS)}")
        if config.path:
            source = str(expand_path(config.path))
            entries = _from_local(expand_path(config.path))
        else:
            source = str(config.hub_id)
            entries = _from_hub(config.hub_id, None)
        if split in ("test", "train"):
            test_ids = _test_ids(config)
            entries = {pmid: entry for pmid, entry in entries.items() if (pmid in test_ids) == (split == "test")}
            if not entries:
                raise DatasetError(f"PubMedQA file {source}: no questions of the {split} split are in it")
        samples = [_record(pmid, entry, source) for pmid, entry in entries.items()]
        if config.limit is not None:
            samples = samples[: int(config.limit)]
        return samples
