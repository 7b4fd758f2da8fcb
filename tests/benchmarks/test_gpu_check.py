"""benchmarks/gpu_check.sh --dry-run: the GPU check's plan, and every job it plans composes here."""

from __future__ import annotations

import os
import subprocess
import sys

from support import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_dry_run_prints_the_plan_and_the_configs_compose():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1. pytest -m gpu tests/e2e/test_gpu.py" in out
    assert "python -m quantbench -m model=llama-1b-random precision=" in out and "batch=1,32,256" in out
    planned = out.split("precision=")[1].split()[0].split(",")
    assert {"fp32", "fp16", "nf4"} <= set(planned)  # the README's headline precisions
    assert not any(name.startswith(("gguf-", "gptq", "awq")) for name in planned)
    assert f"configs compose: {len(planned)} precisions x 3 batches = {len(planned) * 3} jobs (llama-1b-random)" in out


def test_bad_arguments_are_one_line_and_exit_2():
    done = _run("--part", "everything", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu_check.sh: --part must be core, bnb or all, got 'everything'"
