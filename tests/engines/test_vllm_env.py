"""vLLM's environment (quantbench/engines/vllm_env.py) without installing it: the lock, the version
shim read back as vLLM reads it, the scripts moved with the environment, what counts as installed,
and engine=vllm finding its executable and writing its CPU settings. The install itself and a real
server: tests/e2e/test_vllm_serve.py (marker `vllm`)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from support import ROOT
from support.engines import server_request

from quantbench.cache import MANIFEST_FILE
from quantbench.config import registry
from quantbench.engines.vllm import FROM_CACHE, FROM_COMMAND, FROM_PATH, KV_CACHE_VARIABLE, find_vllm
from quantbench.engines.vllm_env import (
    DISTRIBUTION,
    ENV_KIND,
    INSTALL_COMMAND,
    VLLM_INSTALL,
    env_entry,
    installed_env,
    lock_pins,
    pinned_version,
    relocate_scripts,
    shim_version,
    write_version_shim,
)
from quantbench.runtime.device import Device

CPU = Device("cpu", None, "test cpu")
GPU = Device("cuda", 0, "test gpu", capability=(9, 0))


def test_the_lock_pins_vllm_and_a_cpu_torch_and_leaves_out_the_cuda_only_companions():
    pins = lock_pins()
    assert pins[DISTRIBUTION] == pinned_version()
    assert pins["torch"].endswith("+cpu")
    # PyPI has only CUDA builds of these, which fail to load against torch+cpu (the lock's header).
    assert not {"torchvision", "torchaudio", "torchcodec"} & set(pins)
    assert "vllm" not in pins  # the `vllm` distribution is the shim, made by the install, not pip


def test_the_shim_reads_back_as_the_cpu_build_of_vllm_and_owns_no_file_of_vllms(tmp_path):
    dist_info = write_version_shim(tmp_path, "0.32.0")
    (found,) = importlib.metadata.distributions(name="vllm", path=[str(tmp_path)])
    # What vLLM asks: version("vllm"), and whether it contains "cpu" (its CPU platform's test).
    assert found.version == shim_version("0.32.0") == "0.32.0+cpu" and "cpu" in found.version
    assert dist_info.name == "vllm-0.32.0+cpu.dist-info"
    assert {str(path) for path in found.files} == {
        f"{dist_info.name}/{name}" for name in ("METADATA", "INSTALLER", "RECORD")
    }


def test_the_environments_scripts_run_after_it_is_renamed_into_place(tmp_path):
    built, final = tmp_path / ".partial-env", tmp_path / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(built)
    script = built / "bin" / "hello"
    script.write_text(f"#!{built / 'bin' / 'python'}\nimport sys\nprint(sys.prefix)\n")
    script.chmod(0o755)
    assert "hello" in relocate_scripts(built, built, final)
    os.rename(built, final)
    done = subprocess.run([str(final / "bin" / "hello")], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(final)  # the moved environment's own interpreter, in its own prefix


def fake_install(cache_dir: Path, manifest: bool = True) -> Path:
    """An entry shaped as the install leaves it (bin/vllm, the manifest last), without vLLM in it."""
    entry = env_entry(cache_dir)
    (entry / "bin").mkdir(parents=True)
    (entry / "bin" / "vllm").write_text("#!/bin/sh\nexit 1\n")
    if manifest:
        built = {"torch_version": "2.13.0+cpu", "install_s": 95.0}
        document = {"kind": ENV_KIND, "version": pinned_version(), "distribution": DISTRIBUTION, "built": built}
        (entry / MANIFEST_FILE).write_text(json.dumps({**document, "python": "3.11.7"}))
    return entry


def test_only_an_entry_with_its_manifest_is_installed(tmp_path):
    assert VLLM_INSTALL.installed(tmp_path) is None
    entry = fake_install(tmp_path, manifest=False)
    assert installed_env(tmp_path) is None  # interrupted before the manifest: not an environment
    (entry / MANIFEST_FILE).write_text(json.dumps({"kind": ENV_KIND, "version": pinned_version()}))
    assert VLLM_INSTALL.installed(tmp_path) == entry
    assert entry.parent.name == "engines" and entry.name.startswith(f"{DISTRIBUTION}-{pinned_version()}-")


def test_describe_names_the_version_build_and_executable(tmp_path):
    entry = fake_install(tmp_path)
    line = VLLM_INSTALL.describe(entry)
    assert f"vLLM {pinned_version()}" in line and "CPU build" in line and str(entry / "bin" / "vllm") in line


def test_vllm_is_found_in_engine_command_then_the_cache_then_path(compose_config, tmp_path, monkeypatch):
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    (on_path / "vllm").write_text("#!/bin/sh\n")
    (on_path / "vllm").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    engine = compose_config(["scenario=serve", "engine=vllm"]).engine
    cache = tmp_path / "cache"
    assert find_vllm(engine, cache) == ([str(on_path / "vllm")], FROM_PATH)
    entry = fake_install(cache)
    assert find_vllm(engine, cache) == ([str(entry / "bin" / "vllm")], FROM_CACHE)
    engine = compose_config(["scenario=serve", "engine=vllm", "engine.command=/opt/v/bin/vllm --x"]).engine
    assert find_vllm(engine, cache) == (["/opt/v/bin/vllm", "--x"], FROM_COMMAND)


def test_without_any_vllm_the_reason_names_the_install_command(compose_config, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = compose_config(["scenario=serve", "engine=vllm"]).engine
    reason = registry.engines().get("vllm").unavailable_reason(engine, tmp_path)
    assert INSTALL_COMMAND in reason and "engine.command" in reason


def test_on_a_cpu_the_cached_vllm_gets_a_kv_cache_size_and_records_its_settings(compose_config, tmp_path):
    entry = fake_install(tmp_path)
    cfg = compose_config(["scenario=serve", "engine=vllm", "precision=bf16", "engine.kv_cache_space_gb=2"])
    launch = registry.engines().get("vllm").launch(server_request(cfg, CPU, cache_dir=tmp_path))
    command = launch.command
    assert command[:3] == [str(entry / "bin" / "vllm"), "serve", "/w"]
    assert command[command.index("--dtype") + 1] == "bfloat16" and "--no-enable-prefix-caching" in command
    # vLLM's CPU setting, set by quantbench so that one in the user's environment does not decide.
    assert launch.environment == {KV_CACHE_VARIABLE: "2"}
    assert launch.facts["vllm_version"] == pinned_version() and launch.facts["vllm_executable_from"] == FROM_CACHE
    assert launch.facts["kv_cache_space_gb"] == 2 and launch.facts["vllm_cpu_threads_bind"].startswith("auto")
    assert launch.prefix_caching == "off" and "kv_cache_space_gb=2" in launch.memory_setting


def test_cpu_settings_reach_the_server_and_stay_off_a_gpu(compose_config, tmp_path, monkeypatch):
    monkeypatch.delenv(KV_CACHE_VARIABLE, raising=False)
    fake_install(tmp_path)
    overrides = ["engine.cpu_threads_bind=0-1", "engine.max_model_len=2048", "engine.kv_cache_space_gb=null"]
    cfg = compose_config(["scenario=serve", "engine=vllm", "precision=fp32", *overrides])
    on_cpu = registry.engines().get("vllm").launch(server_request(cfg, CPU, cache_dir=tmp_path))
    assert on_cpu.environment == {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}
    assert on_cpu.facts["kv_cache_space_gb"] is None  # null: vLLM's own sizing
    assert on_cpu.command[on_cpu.command.index("--max-model-len") + 1] == "2048"
    on_gpu = registry.engines().get("vllm").launch(server_request(cfg, GPU, cache_dir=tmp_path))
    assert on_gpu.environment == {} and "kv_cache_space_gb" not in on_gpu.facts


@pytest.mark.parametrize(("key", "value"), [("kv_cache_space_gb", "0"), ("max_model_len", "0")])
def test_bad_vllm_settings_are_reasons(compose_config, tmp_path, key, value):
    engine = compose_config(["scenario=serve", "engine=vllm", f"engine.{key}={value}"]).engine
    assert f"engine.{key}" in registry.engines().get("vllm").unavailable_reason(engine, tmp_path)


def test_the_install_refuses_a_python_older_than_vllms(monkeypatch, tmp_path):
    from quantbench.engines import vllm_env

    monkeypatch.setattr(vllm_env, "MIN_PYTHON", (99, 0))  # a Python newer than this one
    with pytest.raises(vllm_env.VllmUnavailable, match="needs Python 99.0 or later"):
        VLLM_INSTALL.install(tmp_path)
    assert not (tmp_path / "engines").exists() or not any((tmp_path / "engines").iterdir())


def test_a_python_script_gets_the_version_of_its_own_environment(tmp_path, monkeypatch):
    from quantbench.engines.vllm import vllm_version

    write_version_shim(tmp_path / "site", "9.9.9")
    script = tmp_path / "vllm"
    script.write_text(f"#!{sys.executable}\n")
    # The interpreter of the script is asked; here quantbench's own, given the shim on its path.
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    assert vllm_version(str(script), FROM_PATH, None) == "9.9.9+cpu"


@pytest.mark.parametrize(
    ("precision", "words"),
    [
        ("nf4", "Unknown quantization method: bitsandbytes"),
        ("int8", "Unknown quantization method: bitsandbytes"),
        ("gptq-8bit", "supported types are: (uint4, uint4b8)"),
    ],
)
def test_on_a_cpu_what_vllms_cpu_build_refuses_is_skipped_in_its_words(compose_config, precision, words):
    cfg = compose_config(["scenario=serve", "engine=vllm", f"precision={precision}"])
    reason = registry.engines().get("vllm").unsupported_reason(cfg.precision, CPU)
    assert words in reason and f"{DISTRIBUTION} {pinned_version()}" in reason


def test_4bit_gptq_and_awq_need_avx512_on_a_cpu(compose_config, monkeypatch):
    from quantbench.engines import vllm as vllm_engine

    engine = registry.engines().get("vllm")
    for precision in ("gptq", "awq"):
        cfg = compose_config(["scenario=serve", "engine=vllm", f"precision={precision}"])
        monkeypatch.setattr(vllm_engine, "cpu_has_avx512", lambda: False)
        assert "no attribute 'cpu_gemm_wna16'" in engine.unsupported_reason(cfg.precision, CPU)
        monkeypatch.setattr(vllm_engine, "cpu_has_avx512", lambda: True)
        assert engine.unsupported_reason(cfg.precision, CPU) is None
        assert engine.unsupported_reason(cfg.precision, GPU) is None  # Marlin on a GPU: not this check


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_dense_precisions_run_on_vllms_cpu_build(compose_config, precision):
    cfg = compose_config(["scenario=serve", "engine=vllm", f"precision={precision}"])
    assert registry.engines().get("vllm").unsupported_reason(cfg.precision, CPU) is None


def test_the_readme_and_ci_install_vllms_environment_and_ci_runs_its_server_test():
    """The README's set-up names the install command; .ci/run runs it and the `vllm` tests after it."""
    assert INSTALL_COMMAND in (ROOT / "README.md").read_text()
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.lstrip().startswith("#")]
    install = next(i for i, line in enumerate(steps) if line.startswith(INSTALL_COMMAND))
    assert any("-m vllm" in line for line in steps[install + 1 :])
