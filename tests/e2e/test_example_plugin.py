"""The example third-party plugin (examples/quantbench-plugin-example), installed and exercised.

It is installed with pip into a temporary directory put on the import path (PYTHONPATH for
subprocesses, sys.path in-process), not into the shared environment: a test run changes nothing
that outlives it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from support import ROOT

EXAMPLE = ROOT / "examples" / "quantbench-plugin-example"
QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, pip-installed into its own directory (metadata, entry points, YAML)."""
    pytest.importorskip("torchao")
    work = tmp_path_factory.mktemp("plugin")
    source = work / "source"
    # Built from a copy: the build leaves build/ and *.egg-info behind in the source tree.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    return target


def environment_with(path: Path | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)
    if path is not None:
        environment["PYTHONPATH"] = str(path)
    return environment


def test_a_sweep_with_the_plugin_precision_from_the_command_line(plugin_path, tmp_path):
    sweep = tmp_path / "sweep"
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench", "-m", *QUICK, "precision=fp32,torchao-int3wo", f"hydra.sweep.dir={sweep}"],
        env=environment_with(plugin_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = pl.read_parquet(sweep / "summary.parquet")
    rows = {row["precision"]: row for row in summary.iter_rows(named=True)}
    assert set(rows) == {"fp32", "torchao-int3wo"}
    assert rows["torchao-int3wo"]["status"] == "ok", rows["torchao-int3wo"]["reason"]
    assert rows["torchao-int3wo"]["backend"] == "torchao-intx"
    assert rows["torchao-int3wo"]["torchao_weight_bits"] == 3
    # 3-bit weights stored one int8 each in the decoder layers: clearly smaller than fp32, though
    # embeddings stay fp32
    assert rows["torchao-int3wo"]["weight_memory_gb"] < 0.7 * rows["fp32"]["weight_memory_gb"]


def test_quantbench_list_shows_the_plugin_with_its_package_and_version(plugin_path):
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench.cli.main", "list", "--device", "cpu"],
        env=environment_with(plugin_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    backend_rows = [line for line in completed.stdout.splitlines() if line.startswith("│ torchao-intx ")]
    assert backend_rows, completed.stdout
    assert "quantbench-torchao-intx" in backend_rows[0] and "0.2.0" in backend_rows[0] and "yes" in backend_rows[0]
    assert "precision=torchao-int3wo" in completed.stdout  # its config options, from the same package


def test_without_the_plugin_its_precision_is_an_unknown_option(tmp_path):
    from quantbench.config import registry

    if "torchao-intx" in registry.backends().names():
        pytest.skip("the example plugin is installed in this environment itself")
    completed = subprocess.run(
        [sys.executable, "-m", "quantbench", *QUICK, "precision=torchao-int3wo", f"hydra.run.dir={tmp_path}"],
        env=environment_with(None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    assert "unknown precision 'torchao-int3wo'; did you mean 'torchao-int8wo'? choose one of:" in completed.stderr


def test_a_bit_width_the_plugin_lacks_is_a_failed_row_and_another_runs_in_process(
    plugin_path, tmp_path, run_quantbench, monkeypatch
):
    monkeypatch.syspath_prepend(str(plugin_path))  # in-process: the registry and Hydra see it at once
    sweep = run_quantbench(
        ["-m", *QUICK, "hardware=cpu", "precision=torchao-int2wo", "precision.bits=8,6", "bench.isolation=none"],
        tmp_path,
    )
    rows = {row["status"]: row for row in pl.read_parquet(sweep / "summary.parquet").iter_rows(named=True)}
    assert set(rows) == {"failed", "ok"}, rows
    assert "torchao-intx quantizes weights to 1 to 7 bits, not 8" in rows["failed"]["reason"]
    result = json.loads((Path(rows["ok"]["job_dir"]) / "result.json").read_text())
    assert result["metrics"]["torchao_weight_bits"] == 6 and result["metrics"]["compute_dtype"] == "float32"


def test_a_misspelt_key_in_a_plugin_option_is_the_same_one_line_error_as_in_a_built_in_one(plugin_path, tmp_path):
    def error_of(*overrides: str) -> tuple[int, list[str]]:
        completed = subprocess.run(
            [sys.executable, "-m", "quantbench", *QUICK, *overrides, f"hydra.run.dir={tmp_path}"],
            env=environment_with(plugin_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return completed.returncode, [line for line in completed.stderr.splitlines() if line.strip()]

    # The plugin's schema (IntxSettings, stored as precision/base_torchao_intx) types its options.
    plugin_code, plugin_lines = error_of("precision=torchao-int3wo", "precision.group_sizee=64")
    builtin_code, builtin_lines = error_of("precision=fp16", "precision.dtypee=64")
    assert plugin_code == builtin_code == 2
    assert len(plugin_lines) == len(builtin_lines) == 1, (plugin_lines, builtin_lines)
    assert "group_sizee" in plugin_lines[0]
    normalised = (
        plugin_lines[0]
        .replace("torchao-int3wo", "OPTION")
        .replace("group_sizee", "KEY")
        .replace("group_size", "NEAREST")
        .replace("IntxSettings", "SCHEMA")
    )
    expected = (
        builtin_lines[0]
        .replace("fp16", "OPTION")
        .replace("dtypee", "KEY")
        .replace("dtype", "NEAREST")
        .replace("DensePrecisionConfig", "SCHEMA")
    )
    assert normalised == expected


def test_an_unsupported_bit_width_names_the_ones_that_work(plugin_path, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_path))
    from quantbench_torchao_intx.backend import IntxSettings, intx_config

    with pytest.raises(ValueError, match="quantizes weights to 1 to 7 bits, not 0; set precision.bits"):
        intx_config(IntxSettings(name="x", backend="torchao-intx", bits=0))
    assert str(intx_config(IntxSettings(name="x", backend="torchao-intx", bits=5)).weight_dtype) == "torch.int5"
