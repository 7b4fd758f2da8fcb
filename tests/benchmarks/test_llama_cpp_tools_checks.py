"""benchmarks/llama_bench_check.py and benchmarks/llama_perplexity_kl_check.py: their parsing of the
tools' output, cheaply (a stand-in llama-bench, a base file and a log written here), then both scripts run
on tiny-llama against llama.cpp's own llama-bench and llama-perplexity (slow; skipped where the tools are
not built). The speed ratio is for people (a random tiny model on a shared CPU); the KL divergence over the
full vocabulary must agree."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)


def load_script(name: str, monkeypatch) -> ModuleType:
    """A benchmark script as a module (benchmarks/ is not a package), without running its main()."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its sibling imports, as when it is run
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llama_bench_is_asked_for_one_test_and_its_json_record_read(tmp_path, monkeypatch):
    check = load_script("llama_bench_check.py", monkeypatch)
    record = {"avg_ts": 101.5, "stddev_ts": 2.5, "n_prompt": 40, "n_gen": 0}
    stand_in = tmp_path / "llama-bench"  # prints its arguments on stderr and one JSON record
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" >&2\necho '{json.dumps([record])}'\n")
    stand_in.chmod(0o755)
    got = check.llama_bench(stand_in, tmp_path / "model.gguf", 2, 5, ["-p", "40", "-n", "0"])
    assert got["avg_ts"] == 101.5 and got["stddev_ts"] == 2.5
    assert got["command"] == f"{stand_in} -m {tmp_path / 'model.gguf'} -t 2 -r 5 -o json -p 40 -n 0"

    stand_in.write_text(f"#!/bin/sh\necho '{json.dumps([record, record])}'\n")
    with pytest.raises(SystemExit, match="expected one llama-bench test, got 2"):
        check.llama_bench(stand_in, tmp_path / "model.gguf", 2, 5, [])


def test_llama_perplexity_s_base_file_and_summary_are_read(tmp_path, monkeypatch):
    check = load_script("llama_perplexity_kl_check.py", monkeypatch)
    n_ctx, n_vocab, chunks = 4, 7, [[1, 2, 3, 4], [5, 6, 7, 8]]
    base = tmp_path / "base.kld"  # llama-perplexity's layout: magic, n_ctx, n_vocab, n_chunk, the tokens, logits
    base.write_bytes(
        b"_logits_"
        + struct.pack("<Iii", n_ctx, n_vocab, len(chunks))
        + struct.pack("<8i", *sum(chunks, []))
        + b"\0" * 64
    )
    assert check.base_file_tokens(base) == (n_ctx, n_vocab, chunks)
    (tmp_path / "other").write_bytes(b"GGUF" + b"\0" * 16)
    with pytest.raises(SystemExit, match="not a llama-perplexity log-probabilities file"):
        check.base_file_tokens(tmp_path / "other")

    output = (
        "====== KL divergence statistics ======\nMean    KLD:   0.034567 ±   0.001234\nSame top p: 91.234 ± 0.5 %\n"
    )
    assert check.parse_number(output, "Mean    KLD") == pytest.approx(0.034567)
    assert check.parse_number(output, "Same top p") == pytest.approx(91.234)
    with pytest.raises(SystemExit, match="no 'Mean PPL\\(Q\\)'"):
        check.parse_number(output, "Mean PPL(Q)")


def tools_or_skip(cache_dir: Path, name: str) -> None:
    from quantbench.gguf.tools import ToolsUnavailable, tool_path

    try:
        tool_path(cache_dir, name)
    except ToolsUnavailable as error:
        pytest.skip(f"llama.cpp's tools are not built here: {error}")


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--model", "tiny-llama", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),  # the tests' cache (QUANTBENCH_CACHE) and data
    )


# slow (~30 s: three llama-bench runs and a job); no faster test runs llama-bench
@pytest.mark.slow
def test_llama_bench_check_compares_pp_and_tg_with_the_job(cache_dir):
    tools_or_skip(cache_dir, "llama-bench")
    done = run_script(
        "llama_bench_check.py",
        *("--precision", "gguf-q8_0", "--rounds", "1", "--iterations", "3", "--reps", "2", "--max-new-tokens", "8"),
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a ratio below 0.95, which a test does not judge
    assert re.search(r"-p \d+ -n 0 -b \d+ -ub \d+", done.stdout) and "-n 7 -d " in done.stdout
    for name in ("pp", "tg"):
        ratio = re.search(rf"^{name}: quantbench / llama-bench median ([0-9.]+)", done.stdout, re.M)
        assert ratio and float(ratio.group(1)) > 0, done.stdout[-2000:]


# slow (~60 s: llama-perplexity twice, a quality job and three scorers); no faster test runs llama-perplexity
@pytest.mark.slow
def test_kl_divergence_over_the_full_vocabulary_agrees_with_llama_perplexity(cache_dir):
    tools_or_skip(cache_dir, "llama-perplexity")
    done = run_script("llama_perplexity_kl_check.py", "--chunks", "4", "--context", "128")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert re.search(r"llama-perplexity: 4 chunks of 128", done.stdout)
    assert "fp32 transformers, full vocabulary" in done.stdout and "f32 GGUF llama.cpp, top 32" in done.stdout
