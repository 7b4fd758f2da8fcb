"""Importance-matrix GGUF types (gguf-iq4_xs, ...) for real on the tiny decoder: llama-imatrix computes the
matrix once from the gptq/awq calibration windows, `quantbench cache list` shows it, a second type reuses it
without running llama-imatrix again, and a machine without llama.cpp's tools gets a skipped row naming the
command that builds them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from quantbench.backends.base import LoadRequest
from quantbench.cache import read_manifest
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
# Short windows: the built-in prompts give tiny-llama's tokenizer about 2,000 tokens, and llama-imatrix
# wants at least two windows.
CALIBRATION = ["precision.calibration.n_samples=8", "precision.calibration.seq_len=128"]


def tools_or_skip(cache_dir: Path) -> None:
    from quantbench.gguf.tools import ToolsUnavailable, tool_path

    try:
        for name in ("llama-imatrix", "llama-quantize"):
            tool_path(cache_dir, name)
    except ToolsUnavailable as error:
        pytest.skip(f"llama.cpp's tools are not built here: {error}")


def test_without_llama_cpp_tools_an_iq_type_is_a_skipped_row_naming_the_install_command(tmp_path, monkeypatch):
    from support.app import run_app

    monkeypatch.delenv("QUANTBENCH_LLAMA_CPP_TOOLS", raising=False)
    empty_cache = tmp_path / "cache"  # no tools installed in it (the tiny model is made there, quickly)
    run_dir, _ = run_app(  # a run whose only job is skipped exits non-zero
        ["model=tiny-llama", "precision=gguf-iq4_xs", "hardware=cpu", "bench=quick", f"cache_dir={empty_cache}"],
        tmp_path,
        monkeypatch,
    )
    (result_file,) = run_dir.rglob("result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "skipped"
    assert "llama-imatrix and llama-quantize" in result["reason"]
    assert "run `quantbench engines install llama.cpp`" in result["reason"]
    assert not (empty_cache / "gguf").exists()  # nothing was converted or computed before the check


def test_a_type_llama_quantize_refuses_is_a_skipped_row_quoting_its_error(tmp_path, monkeypatch):
    from quantbench.errors import JobSkipped
    from quantbench.gguf.imatrix import quantize_with_imatrix

    tools = tmp_path / "bin"  # a stand-in llama-quantize that refuses, as llama.cpp's does
    tools.mkdir()
    (tools / "llama-quantize").write_text(
        "#!/bin/sh\necho 'main: build = 0'\necho 'llama_model_quantize: failed to quantize: Missing importance "
        "matrix for tensor blk.0.attn_q.weight in a very low-bit quantization'\n"
        "echo \"main: failed to quantize model from '$4'\"\nexit 1\n"
    )
    (tools / "llama-quantize").chmod(0o755)
    monkeypatch.setenv("QUANTBENCH_LLAMA_CPP_TOOLS", str(tools))
    output = tmp_path / "entry" / "model.gguf"
    output.parent.mkdir()
    with pytest.raises(JobSkipped) as refused:
        quantize_with_imatrix(tmp_path, tmp_path / "f32.gguf", output, "iq1_s", tmp_path / "imatrix.gguf", 2)
    reason = str(refused.value)
    assert reason.startswith("llama-quantize could not make GGUF type iq1_s: llama_model_quantize: failed")
    assert "Missing importance matrix for tensor blk.0.attn_q.weight" in reason and "(exit 1;" in reason
    assert "quantize.log" in reason and (output.parent / "quantize.log").is_file()


def load_iq(compose_config, precision: str):
    """The backend's load of an iq type on tiny-llama: the matrix and the file, cached or made."""
    cfg = compose_config(["model=tiny-llama", f"precision={precision}", "hardware=cpu", *CALIBRATION])
    family = registry.families().get("decoder")
    cache = Path(cfg.cache_dir)
    spec = resolve_model(cfg.model, family, cache)
    request = LoadRequest(
        model=spec, family=family, precision=cfg.precision, device=resolve_device("cpu"), cache_dir=cache
    )
    return registry.backends().get("gguf").load(request).metrics


# Slow (~30 s on 2 cores: llama-imatrix and two quantizations); the default tier keeps
# tests/gguf's check that the iq types calibrate on the GPTQ/AWQ windows, and the skipped row.
@pytest.mark.slow
@needs_llama_cpp
def test_iq_types_share_one_importance_matrix_computed_once_from_the_calibration_windows(compose_config, cache_dir):
    tools_or_skip(cache_dir)
    first = load_iq(compose_config, "gguf-iq4_xs")
    entry = cache_dir / "gguf" / first["importance_matrix"]
    stamp = (entry / "imatrix.log").stat().st_mtime_ns, (entry / "quantbench.json").stat().st_mtime_ns
    # Another type, and the same type again: the matrix is reused, llama-imatrix does not run (entry untouched).
    second = load_iq(compose_config, "gguf-iq4_nl")
    again = load_iq(compose_config, "gguf-iq4_xs")
    assert second["importance_matrix"] == again["importance_matrix"] == entry.name
    assert second["imatrix_cache_hit"] is True and second["imatrix_s"] == 0.0 and second["cache_hit"] is False
    assert again["imatrix_cache_hit"] is True and again["cache_hit"] is True and again["quantize_s"] == 0.0
    assert ((entry / "imatrix.log").stat().st_mtime_ns, (entry / "quantbench.json").stat().st_mtime_ns) == stamp

    manifest = read_manifest(entry)
    assert manifest["artefact"] == "importance matrix"
    assert manifest["calibration"]["n_samples"] == 8 and manifest["calibration"]["seq_len"] == 128
    assert manifest["calibration"]["source"]["option"] == "builtin"  # gptq's and awq's default text
    built = manifest["built"]
    assert built["tokens_per_window"] == 128 and built["chunks"] == built["calibration_windows"] >= 2
    assert built["calibration_tokens"] == 128 * built["calibration_windows"]
    assert manifest["llama_cpp"]  # the tools' version, part of the key
    assert (entry / "imatrix.gguf").is_file() and (entry / "calibration.txt").is_file()
    assert second["imatrix_windows"] == built["calibration_windows"]
    # 14 linear weights: the 128-wide ones fall back to IQ4_NL (rows not a multiple of 256), ffn_down is IQ4_XS.
    assert first["tensor_types"] == "IQ4_NL:12 IQ4_XS:2" and second["tensor_types"] == "IQ4_NL:14"
    assert first["bits_per_weight"] < second["bits_per_weight"] == pytest.approx(4.5)

    # Other calibration settings are another matrix.
    from quantbench.gguf.imatrix import ImatrixRecipe

    fields = {
        "model_name": manifest["model_name"],
        "model_fingerprint": manifest["model"],
        "revision": manifest["revision"],
        "calibration": manifest["calibration"],
        "converter_version": manifest["llama_cpp_python"],
        "llama_cpp_version": manifest["llama_cpp"],
    }
    assert ImatrixRecipe(**fields).key == manifest["key"]
    assert ImatrixRecipe(**{**fields, "calibration": {**manifest["calibration"], "seed": 1}}).key != manifest["key"]


# slow (a sweep of two jobs, ~60 s): test_iq_types_share_one_importance_matrix... covers the matrix and its cache
@pytest.mark.slow
@needs_llama_cpp
def test_an_iq_sweep_has_ok_rows_and_cache_list_shows_the_matrix_beside_the_gguf_files(tmp_path, cache_dir, capsys):
    from support.app import sweep_rows

    from quantbench.cli.cache import main as cache_main
    from quantbench.gguf.store import gguf_details

    tools_or_skip(cache_dir)
    args = ["model=tiny-llama", "precision=gguf-iq4_xs,gguf-iq3_s", "hardware=cpu", "bench=quick", *CALIBRATION]
    rows = sweep_rows(args, tmp_path)
    first, second = rows["gguf-iq4_xs"], rows["gguf-iq3_s"]
    assert first["status"] == second["status"] == "ok", (first.get("reason"), second.get("reason"))
    assert first["importance_matrix"] == second["importance_matrix"] and second["imatrix_cache_hit"] is True
    assert first["tokens_per_s"] > 0 and second["bits_per_weight"] < first["bits_per_weight"]
    assert cache_main(["list", "--cache-dir", str(cache_dir), "--kind", "gguf", "--match", "tiny-llama"]) == 0
    listed = capsys.readouterr().out
    assert first["importance_matrix"] in listed and "importance matrix (iq types): " in listed
    matrix_key = read_manifest(cache_dir / "gguf" / first["importance_matrix"])["key"]
    assert first["checkpoint"] in listed
    assert f"with importance matrix {matrix_key}" in gguf_details(cache_dir / "gguf" / first["checkpoint"])
