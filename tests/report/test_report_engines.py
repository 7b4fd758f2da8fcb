"""A sweep across engines (transformers precisions beside GGUF types on llama.cpp) in the analysis,
the report, the findings and `recommend`: every row is named "precision · engine" and compared with
the same baseline."""

from __future__ import annotations

import json

import pytest
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.findings import findings
from quantbench.analysis.frontier import Limits
from quantbench.collect.sweeps import write_summary
from quantbench.config.schema import AnalysisConfig
from quantbench.report import write_report
from quantbench.report.recommend import recommend

SETTINGS = AnalysisConfig(bootstrap_resamples=300)
PRECISIONS = (
    SyntheticPrecision("fp32", 1.0, 0.50, 1.00, 0.60, 0.0, "float32"),
    SyntheticPrecision("nf4", 0.6, 0.09, 0.40, 0.50, 0.050),
    SyntheticPrecision("gguf-q8_0", 3.0, 0.15, 0.30, 0.59, 0.004),
    SyntheticPrecision("gguf-q4_k_m", 4.0, 0.09, 0.20, 0.56, 0.030),
)
ENGINES = {
    "gguf-q8_0": "llama.cpp",
    "gguf-q4_k_m": "llama.cpp",
    "nf4": "transformers",
}  # fp32: no engine, as rows before engines


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory):
    sweep = write_sweep(
        tmp_path_factory.mktemp("mixed"), SyntheticSweep(precisions=PRECISIONS, batches=(1, 8), iterations=8)
    )
    for result_file in sweep.rglob("result.json"):
        result = json.loads(result_file.read_text())
        engine = ENGINES.get(result["identity"]["precision"])
        if engine is not None:
            result["metrics"]["engine"] = engine
            result_file.write_text(json.dumps(result))
    write_summary(sweep)
    return sweep


def test_every_configuration_is_named_with_its_engine_and_compared_with_the_one_baseline(mixed_sweep):
    analysis = analyze(mixed_sweep, SETTINGS)
    assert analysis.settings.baseline == "fp32 · transformers"
    assert analysis.precisions == [
        "fp32 · transformers",
        "gguf-q8_0 · llama.cpp",
        "nf4 · transformers",
        "gguf-q4_k_m · llama.cpp",
    ]
    assert "engine" not in analysis.varying_group_columns()  # one group: the engine is part of the configuration
    speed = analysis.throughput.filter(analysis.throughput["metric"] == "tokens_per_s")
    ratios = {(row["precision"], row["batch"]): row["ratio"] for row in speed.iter_rows(named=True)}
    assert ratios[("gguf-q4_k_m · llama.cpp", 1)] == pytest.approx(4.0, rel=0.1)
    assert ratios[("nf4 · transformers", 8)] == pytest.approx(0.6, rel=0.1)


def test_report_tables_findings_and_recommend_name_the_engine(mixed_sweep):
    files = write_report(mixed_sweep, SETTINGS)
    markdown = files.markdown.read_text()
    tables = [block for block in markdown.split("\n\n") if block.startswith("|") and "gguf" in block]
    assert tables
    for table in tables:  # no GGUF row without its engine, no bare fp32 row
        assert "gguf-q4_k_m · llama.cpp" in table and "| gguf-q4_k_m |" not in table, table
    assert "| fp32 |" not in markdown
    analysis = analyze(mixed_sweep, SETTINGS)
    speed_lines = [line for line in findings(analysis) if line.startswith("Highest throughput")]
    assert speed_lines and all("gguf-q4_k_m · llama.cpp with" in line for line in speed_lines)
    result = recommend(analysis, Limits(max_memory_gb=0.25))
    assert result.best["precision"] == "gguf-q4_k_m · llama.cpp"
    assert "nf4 · transformers" in set(result.candidates["precision"])
