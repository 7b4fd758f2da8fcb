"""The job directory's contract: one owner of its file names, result.json read back as written,
older schema versions upgraded on read, unreadable ones a reason, and a config identity that an
upgrade of quantbench does not change."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from support.old_results import a_result, stored_by_an_older_version, v1_data, written_by

import quantbench
from quantbench import jobdir
from quantbench.collect.sweeps import collect_sweep
from quantbench.errors import UnreadableResult
from quantbench.jobdir import CommandLineKeys, JobResult, read_result, reusable_result, write_result

PACKAGE_DIR = Path(quantbench.__file__).parent
JOB_FILES = [value for name, value in vars(jobdir).items() if name.endswith("_FILE")]


def test_only_jobdir_names_a_job_directory_file():
    assert {"result.json", "iterations.parquet", "job.yaml", "traceback.txt"} <= set(JOB_FILES)
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if path == PACKAGE_DIR / "jobdir" / "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in JOB_FILES or jobdir.SUPERSEDED_MARK in node.value:
                    offenders.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}: {node.value!r}")
    assert not offenders, "import the name from quantbench.jobdir instead:\n" + "\n".join(offenders)


def test_a_result_reads_back_as_written(tmp_path):
    result = a_result()
    write_result(tmp_path, result)
    read = read_result(tmp_path)
    assert read.to_json() == result.to_json() == JobResult.from_json(result.to_json()).to_json()
    assert read.metrics["ppl"] is None  # JSON has no NaN
    assert read.schema_version == jobdir.SCHEMA_VERSION == 3


def read_back(sweep: Path, data: dict) -> JobResult:
    """`data` written as the result.json of the sweep's job 0, read back."""
    (sweep / "0").mkdir()
    (sweep / "0" / jobdir.RESULT_FILE).write_text(json.dumps(data))
    return read_result(sweep / "0")


def test_a_schema_1_result_is_upgraded_on_read(tmp_path):
    result = read_back(tmp_path, v1_data(a_result()))
    assert result.schema_version == 3
    assert result.metrics == {"ttft_p50_ms": 3.0, "tpot_p50_ms": 1.5, "price_per_hour_usd": 1.2, "tokens_per_s": 12.5}
    assert result.config["hardware"] == {"name": "cpu", "price_per_hour_usd": 1.2}
    row = collect_sweep(tmp_path).row(0, named=True)
    assert row["status"] == "ok" and row["ttft_p50_ms"] == 3.0 and "ttft_ms" not in row


def test_a_schema_2_result_has_its_sample_counts_renamed_on_read(tmp_path):
    """Version 2 named the offline sample counts `<metric>_n_samples`, where serving levels wrote
    `n_<metric>_samples`; version 3 names both `n_<metric>_samples`."""
    from quantbench.report.tails import unresolved_columns

    old = {
        "latency_n_samples": 10,
        "ttft_n_samples": 10,
        "tpot_n_samples": 9,
        "latency_p99_ms": 5.0,
        "tokens_per_s": 12.5,
    }
    result = read_back(tmp_path, written_by(2, a_result(), old))
    assert result.schema_version == 3
    assert result.metrics == {
        "n_latency_samples": 10,
        "n_ttft_samples": 10,
        "n_tpot_samples": 9,
        "latency_p99_ms": 5.0,
        "tokens_per_s": 12.5,
    }
    summary = collect_sweep(tmp_path)
    row = summary.row(0, named=True)
    assert (
        row["status"] == "ok"
        and row["n_tpot_samples"] == 9
        and not [column for column in row if column.endswith("_n_samples")]
    )
    # the report's p99* flag reads the count under its new name (the row has no n_iterations to fall back on)
    assert unresolved_columns(summary, ["latency_p99_ms"]) == {"latency_p99_ms": (99.0, 10)}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            4,
            "result.json has schema version 4, newer than this quantbench reads (1 to 3); "
            "read it with a newer quantbench",
        ),
        (0, "result.json has schema version 0, older than this quantbench reads (1 to 3); re-run the job"),
        (None, "result.json has no integer schema_version (found None); re-run the job"),
    ],
)
def test_an_unreadable_schema_version_is_a_reason(tmp_path, version, expected):
    job_dir = tmp_path / "0"
    job_dir.mkdir()
    data = a_result().to_json()
    data["schema_version"] = version
    (job_dir / jobdir.RESULT_FILE).write_text(json.dumps(data))
    with pytest.raises(UnreadableResult) as error:
        read_result(job_dir)
    assert str(error.value) == expected
    row = collect_sweep(tmp_path).row(0, named=True)
    assert (row["status"], row["reason"]) == ("failed", expected)
    # a resumed sweep runs the job again; an ok result it cannot read is kept aside, not deleted
    assert reusable_result(job_dir, data["config"], CommandLineKeys()) is None
    jobdir.clear_previous_result(job_dir)
    assert not (job_dir / jobdir.RESULT_FILE).exists()
    assert len(list(job_dir.glob(f"result{jobdir.SUPERSEDED_MARK}*.json"))) == 1


def test_a_damaged_result_is_a_reason(tmp_path):
    (tmp_path / jobdir.RESULT_FILE).write_text("{not json")
    with pytest.raises(UnreadableResult, match="^unreadable result.json: Expecting property name"):
        read_result(tmp_path)
    (tmp_path / jobdir.RESULT_FILE).write_text(json.dumps({**a_result().to_json(), "status": "done"}))
    with pytest.raises(UnreadableResult, match="status 'done', not one of ok, skipped, failed"):
        read_result(tmp_path)


# The config identity across quantbench versions, on a real composed config.


@pytest.fixture
def current_config(compose_config) -> dict:
    composed = compose_config(["model=tiny-llama", "precision=nf4", "hardware=h100", "bench=quick"])
    return jobdir.job_config(OmegaConf.masked_copy(composed, [key for key in composed if key != "hydra"]))


def test_a_new_key_left_at_its_default_and_a_renamed_key_keep_the_identity(tmp_path, current_config):
    job_dir = stored_by_an_older_version(tmp_path, current_config)
    assert json.loads((job_dir / jobdir.RESULT_FILE).read_text())["config_hash"] != jobdir.config_hash(current_config)
    # the sweep ran with precision=nf4 bench=quick: group choices, so every key of their options is a default
    typed = CommandLineKeys.from_overrides(
        ["model=tiny-llama", "precision=nf4", "bench=quick"], {"model", "precision", "bench"}
    )
    reused = reusable_result(job_dir, current_config, typed)
    assert reused is not None and reused.metrics["ttft_p50_ms"] == 3.0


def test_a_new_key_set_on_the_command_line_or_changed_re_measures(tmp_path, current_config):
    job_dir = stored_by_an_older_version(tmp_path, current_config)
    typed = CommandLineKeys.from_overrides(["bench=quick", "bench.max_seconds=300"], {"bench"})
    assert reusable_result(job_dir, current_config, typed) is None  # typed by hand, even at its default
    assert reusable_result(job_dir, current_config, None) is None  # who set what unknown: a new key is a change
    changed = copy.deepcopy(current_config)
    changed["bench"]["max_new_tokens"] += 1  # a key the old result has, changed
    assert reusable_result(job_dir, changed, CommandLineKeys()) is None
    assert reusable_result(job_dir, current_config, CommandLineKeys()) is not None


def test_a_new_group_chosen_on_the_command_line_re_measures(tmp_path):
    old = {"model": {"name": "m"}, "batch": 1}
    current = {**old, "scenario": {"name": "serve", "rate": 4}}
    write_result(tmp_path, a_result(config=old, config_hash=jobdir.config_hash(old)))
    assert reusable_result(tmp_path, current, CommandLineKeys.from_overrides(["scenario=serve"], {"scenario"})) is None
    assert (
        reusable_result(tmp_path, current, CommandLineKeys.from_overrides(["model=m"], {"model", "scenario"}))
        is not None
    )


def test_command_line_keys_are_read_with_hydras_grammar():
    keys = CommandLineKeys.from_overrides(
        [
            "precision=nf4,int8",
            "++precision.calibration.n_samples=64",
            "~bench.seed",
            "+experiment=x",
            "quality=[ppl,kld]",
            "model.note='a, b'",
            "hydra.sweep.dir=/x",
        ],
        groups={"precision", "quality", "experiment"},
    )
    assert keys.values == {"precision.calibration.n_samples", "bench.seed", "model.note"}
    assert keys.groups == {"precision", "quality", "experiment"}
    assert keys.sets("precision.calibration") and keys.sets("precision.calibration.n_samples.x")
    assert keys.sets("precision") and not keys.sets("precision.compute_dtype")
    assert not keys.sets("bench.seeds") and not keys.sets("hydra")


def test_renames_follow_the_schema_table(monkeypatch):
    monkeypatch.setitem(jobdir.RENAMED_KEYS, "bench.tokens", "bench.max_new_tokens")
    assert jobdir.renamed_config({"bench": {"tokens": 8}}) == {"bench": {"max_new_tokens": 8}}
    # where both names are present the new one wins, and reading twice changes nothing
    both = {"bench": {"tokens": 8, "max_new_tokens": 16}}
    assert jobdir.renamed_config(both) == {"bench": {"max_new_tokens": 16}}
    assert jobdir.renamed_config(jobdir.renamed_config(both)) == {"bench": {"max_new_tokens": 16}}
