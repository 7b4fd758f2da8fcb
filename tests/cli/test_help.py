"""`python -m quantbench --help` lists the options a user can pick; `--hydra-help` stays Hydra's."""

from __future__ import annotations

import subprocess
import sys

from quantbench.cli.help import config_groups_text
from quantbench.config.compose import group_options


def run_entry_point(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantbench", *arguments], capture_output=True, text=True, timeout=300)


def test_help_lists_the_pickable_options_usage_and_default_config():
    completed = run_entry_point("--help")
    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    assert "base_" not in text  # schemas (base_model, base_precision, ...) are not options
    assert "python -m quantbench -m precision=fp16,nf4 batch=32,256" in text  # usage lines
    lines = text.splitlines()
    assert f"precision: {', '.join(group_options('precision'))}" in lines
    assert f"model: {', '.join(group_options('model'))}" in lines
    assert "batch: 1" in lines  # the default config
    assert "--hydra-help" in text


def test_help_takes_overrides_and_checks_them_first():
    completed = run_entry_point("--help", "batch=8")
    assert completed.returncode == 0 and "batch: 8" in completed.stdout.splitlines()
    completed = run_entry_point("--help", "precison=fp16")
    assert completed.returncode == 2 and "did you mean 'precision'?" in completed.stderr


def test_hydra_help_is_hydras_own():
    completed = run_entry_point("--hydra-help")
    assert completed.returncode == 0, completed.stderr
    assert "Hydra (" in completed.stdout and "hydra/launcher:" in completed.stdout


def test_the_group_listing_has_every_group_and_no_schema():
    text = config_groups_text()
    groups = [line.split(":")[0] for line in text.splitlines()]
    assert groups == sorted(groups) and {"bench", "dataset", "hardware", "model", "precision", "quality"} <= set(groups)
    assert "hydra" not in groups and "base_" not in text
