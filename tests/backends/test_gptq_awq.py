"""GPTQ and AWQ through gptqmodel: refusals, group-size fit, calibration, the checkpoint cache and
`quantbench cache list|clear` (quantizing for real: tests/e2e/test_gptq_awq_quantize.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from quantbench.backends.base import LoadRequest
from quantbench.backends.calibration import CalibrationError, calibration_source, calibration_windows
from quantbench.backends.checkpoint_cache import quantized_root
from quantbench.backends.group_size import check_group_size, quantized_input_widths, resolve_group_size
from quantbench.cache import MANIFEST_FILE, TEMPORARY_PREFIX, entry_path, is_usable
from quantbench.config import registry
from quantbench.errors import JobSkipped
from quantbench.models.source import ModelSpec, resolve_model
from quantbench.runtime.device import resolve_device

pytest.importorskip("gptqmodel")


class _Family:
    def __init__(self, name: str):
        self.name = name


def _request(compose_config, cache_dir: Path, overrides: list[str]) -> LoadRequest:
    cfg = compose_config(["model=tiny-llama", *overrides])
    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, cache_dir)
    return LoadRequest(
        model=spec, family=family, precision=cfg.precision, device=resolve_device("cpu"), cache_dir=cache_dir
    )


# ---- group size --------------------------------------------------------------------------------


def test_group_size_defaults_to_the_model_then_128():
    assert resolve_group_size(None, 64) == 64
    assert resolve_group_size(None, None) == 128
    assert resolve_group_size(32, 64) == 32


def test_layer_widths_come_from_the_config_without_weights():
    from transformers import LlamaConfig

    # SmolLM2-135M's shape: width 576, MLP 1536
    config = LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_attention_heads=9,
        num_key_value_heads=3,
        num_hidden_layers=2,
        vocab_size=1000,
    )
    widths = quantized_input_widths(config)
    assert set(widths) == {576, 1536}
    assert widths[1536].endswith("mlp.down_proj")


def test_a_group_size_that_does_not_divide_a_width_is_skipped_with_the_fitting_sizes():
    widths = {576: "model.layers.0.self_attn.q_proj", 1536: "model.layers.0.mlp.down_proj"}
    with pytest.raises(JobSkipped) as skipped:
        check_group_size(128, widths, "smollm2-135m")
    message = str(skipped.value)
    assert "576" in message and "model.layers.0.self_attn.q_proj" in message
    assert "16, 32, 64" in message and "128" not in message.split("fit:")[1]
    assert "\n" not in message
    check_group_size(64, widths, "smollm2-135m")
    check_group_size(-1, widths, "smollm2-135m")  # one group per row: no divisibility needed
    with pytest.raises(JobSkipped, match="choose one of"):
        check_group_size(100, widths, "smollm2-135m")


def test_smollm2_config_names_a_group_size_that_fits(compose_config):
    cfg = compose_config(["model=smollm2-135m", "precision=gptq"])
    assert cfg.precision.group_size is None
    assert resolve_group_size(cfg.precision.group_size, cfg.model.quant_group_size) == 64


# ---- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gptq", "awq"])
def test_other_families_are_refused_before_loading(name):
    backend = registry.backends().get(name)
    reason = backend.unsupported_reason(_Family("encoder_decoder"), None)
    assert reason and "encoder_decoder" in reason and "decoder-only" in reason
    assert backend.unsupported_reason(_Family("decoder"), None) is None


def test_a_model_type_gptqmodel_does_not_know_is_refused(tmp_path):
    from transformers import T5Config

    T5Config(d_model=64, num_layers=1, num_heads=2, d_ff=128, vocab_size=100).save_pretrained(tmp_path)
    spec = ModelSpec(
        name="tiny-t5",
        family="decoder",
        load_path=str(tmp_path),
        revision=None,
        is_local=True,
        config=OmegaConf.create({"trust_remote_code": False, "prequantized": None}),
        fingerprint="x",
    )
    reason = registry.backends().get("gptq").unsupported_reason(_Family("decoder"), spec)
    assert reason and "'t5'" in reason and "tiny-t5" in reason


def test_an_already_quantized_checkpoint_must_be_declared_prequantized(tmp_path):
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=100
    )
    (tmp_path / "config.json").write_text(
        json.dumps({**config.to_dict(), "quantization_config": {"quant_method": "gptq", "bits": 4}})
    )
    spec = ModelSpec(
        name="some-gptq",
        family="decoder",
        load_path=str(tmp_path),
        revision=None,
        is_local=True,
        config=OmegaConf.create({"trust_remote_code": False, "prequantized": None}),
        fingerprint="x",
    )
    reason = registry.backends().get("gptq").unsupported_reason(_Family("decoder"), spec)
    assert reason and "already quantized (gptq)" in reason and "model.prequantized=gptq" in reason
    spec.config.prequantized = "gptq"
    assert registry.backends().get("gptq").unsupported_reason(_Family("decoder"), spec) is None


def test_a_prequantized_checkpoint_of_the_other_method_is_refused(compose_config, cache_dir):
    request = _request(compose_config, cache_dir, ["precision=gptq", "model.prequantized=awq"])
    reason = registry.backends().get("gptq").unsupported_reason(request.family, request.model)
    assert reason == "model 'tiny-llama' is a awq checkpoint; run it with precision=awq"


@pytest.mark.parametrize("precision, bits", [("awq", 8), ("gptq", 5)])
def test_unsupported_bits_are_skipped(compose_config, cache_dir, precision, bits):
    request = _request(compose_config, cache_dir, [f"precision={precision}", f"precision.bits={bits}"])
    with pytest.raises(JobSkipped, match=f"not {bits}"):
        registry.backends().get(precision).recipe(request)


def test_too_few_cpu_workers_is_a_clear_skip(monkeypatch):
    from quantbench.backends.gptqmodel_env import gptqmodel_environment

    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "1")
    with pytest.raises(JobSkipped, match="GPTQMODEL_CPU_WORKERS=1 is too few"):
        gptqmodel_environment()


def test_first_use_announces_the_kernel_compilation(tmp_path, monkeypatch, caplog):
    from quantbench.backends.gptqmodel_env import announce_compilation, cpu_workers_default

    assert cpu_workers_default() >= 2
    monkeypatch.setenv("GPTQMODEL_TORCH_EXTENSIONS_DIR", str(tmp_path))
    with caplog.at_level("INFO", logger="quantbench"):
        announce_compilation()
    assert "compiles its C++ kernels on first use" in caplog.text
    built = tmp_path / "int4_cpu" / "0123abcd"
    built.mkdir(parents=True)
    (built / "kernel.so").write_bytes(b"")
    caplog.clear()
    with caplog.at_level("INFO", logger="quantbench"):
        announce_compilation()
    assert "compiles" not in caplog.text


def test_group_size_misfit_is_skipped_before_quantizing(compose_config, cache_dir):
    # tiny-llama's widths are 128 (hidden) and 256 (MLP): 512 divides neither
    request = _request(compose_config, cache_dir, ["precision=gptq", "precision.group_size=512"])
    with pytest.raises(JobSkipped, match="does not divide input width 128"):
        registry.backends().get("gptq").recipe(request)


# ---- calibration and the cache key -------------------------------------------------------------


def test_calibration_windows_are_seeded_and_fixed_length():
    from quantbench.data.builtin import builtin_corpus
    from quantbench.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer()
    texts = builtin_corpus() * 4
    first = calibration_windows(texts, tokenizer, n_samples=8, seq_len=64, seed=0)
    assert first == calibration_windows(texts, tokenizer, n_samples=8, seq_len=64, seed=0)
    assert first != calibration_windows(texts, tokenizer, n_samples=8, seq_len=64, seed=1)
    assert len(first) == 8 and {len(window) for window in first} == {64}
    short = calibration_windows(["a few words"], tokenizer, n_samples=8, seq_len=64, seed=0)
    assert len(short) == 1 and 0 < len(short[0]) < 64
    with pytest.raises(CalibrationError):
        calibration_windows(texts, tokenizer, n_samples=0, seq_len=64, seed=0)


def test_calibration_from_a_text_file_and_a_bad_setting(tmp_path):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("some calibration text\n" * 10)
    source = calibration_source(OmegaConf.create({"dataset": str(text_file), "path": None}))
    assert source["file"] == str(text_file.resolve()) and source["bytes"] == text_file.stat().st_size
    with pytest.raises(CalibrationError, match="not found"):
        calibration_source(OmegaConf.create({"dataset": str(tmp_path / "missing.txt"), "path": None}))
    with pytest.raises(CalibrationError, match="neither a dataset option nor a text file"):
        calibration_source(OmegaConf.create({"dataset": "no-such-dataset", "path": None}))


def test_cache_key_changes_with_every_calibration_setting(compose_config, cache_dir, shared_data):
    backend = registry.backends().get("gptq")

    def key(*overrides: str) -> str:
        return backend.recipe(_request(compose_config, cache_dir, ["precision=gptq", *overrides])).key

    base = key()
    assert key() == base  # stable
    changed = [
        key("precision.calibration.n_samples=64"),
        key("precision.calibration.seq_len=256"),
        key("precision.calibration.seed=1"),
        key(
            "precision.calibration.dataset=pubmedqa", f"precision.calibration.path={shared_data}/pubmedqa/ori_pqal.json"
        ),
        key(
            "precision.calibration.dataset=pubmedqa",
            f"precision.calibration.path={shared_data}/pubmedqa/ori_pqal.json",
            "precision.calibration.split=train",
        ),
        key(f"precision.calibration.dataset={shared_data}/wikitext-2/test.txt"),
        key("precision.bits=8"),
        key("precision.group_size=64"),
        key("precision.desc_act=true"),
    ]
    assert len({base, *changed}) == len(changed) + 1
    awq = registry.backends().get("awq").recipe(_request(compose_config, cache_dir, ["precision=awq"]))
    assert awq.key != base and awq.entry_name().startswith("tiny-llama-awq-w4g128-")


def test_every_quantizing_child_reads_its_request_the_same_way(tmp_path):
    """gptqmodel's child and auto-round's read the calibration windows and the loading keywords
    through one function (gptqmodel_quantize.read_inputs)."""
    from quantbench.backends import autoround_quantize, gptqmodel_quantize

    (tmp_path / "calibration.json").write_text(json.dumps([[1, 2, 3], [4, 5, 6]]))
    request = {"calibration_file": str(tmp_path / "calibration.json"), "trust_remote_code": False, "revision": None}
    assert gptqmodel_quantize.read_inputs(request) == ([[1, 2, 3], [4, 5, 6]], {"trust_remote_code": False})
    assert gptqmodel_quantize.read_inputs({**request, "revision": "abc"}).load_kwargs == {
        "trust_remote_code": False,
        "revision": "abc",
    }
    assert autoround_quantize.read_inputs is gptqmodel_quantize.read_inputs


def test_an_interrupted_write_leaves_no_usable_entry(compose_config, cache_dir, monkeypatch):
    import quantbench.backends.gptqmodel_quantize as worker

    def interrupted(request, scratch, env, *child):  # child: the module and engine that would quantize
        # half a checkpoint, then the build dies
        (Path(request["output_dir"]) / "model.safetensors").write_bytes(b"half")
        (scratch / "quantize.log").write_text("RuntimeError: killed\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(worker, "run_quantization", interrupted)
    backend = registry.backends().get("gptq")
    request = _request(compose_config, cache_dir, ["precision=gptq", "precision.calibration.seed=777"])
    entry = entry_path(cache_dir, backend.recipe(request))
    with pytest.raises(KeyboardInterrupt):
        backend.load(request)
    assert not entry.exists() and not is_usable(entry)
    assert not list(quantized_root(cache_dir).glob(f"{TEMPORARY_PREFIX}{entry.name}*"))
    # the scratch directory keeps only the log its error names; the offloaded layers are gone
    scratch = [path for path in (cache_dir / "tmp").glob(f"quantize-{entry.name}-*")]
    assert scratch and all(sorted(p.name for p in path.iterdir()) == ["quantize.log"] for path in scratch)
    # a directory left by a killed process (never renamed into place) is not an entry
    leftover = quantized_root(cache_dir) / f"{TEMPORARY_PREFIX}{entry.name}-deadbeef"
    leftover.mkdir()
    (leftover / MANIFEST_FILE).write_text("{}")
    assert not is_usable(leftover)


# ---- quantbench cache list|clear ---------------------------------------------------------------


def _fake_cache(root: Path) -> None:
    for kind, name in [
        ("models", "tiny-llama-aaaa"),
        ("quantized", "tiny-llama-gptq-w4g128-bbbb"),
        ("quantized", "smollm2-135m-awq-w4g64-cccc"),
        ("quantized", f"{TEMPORARY_PREFIX}x-dddd"),
    ]:
        (root / kind / name).mkdir(parents=True)
        (root / kind / name / "weights.bin").write_bytes(b"0" * 1000)
    manifest = {
        "method": "gptq",
        "bits": 4,
        "group_size": 128,
        "gptqmodel": "7.7.0",
        "calibration": {"source": {"option": "builtin"}, "n_samples": 128, "seq_len": 512, "seed": 0},
        "built": {"quantize_s": 12.0, "calibration_windows": 2},
    }
    (root / "quantized" / "tiny-llama-gptq-w4g128-bbbb" / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_cache_list_and_clear(tmp_path, capsys):
    from quantbench.cli.cache import main

    _fake_cache(tmp_path)
    assert main(["list", "--cache-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert (
        "tiny-llama-gptq-w4g128-bbbb" in listing
        and "gptq 4-bit g128, calibration builtin 2x512 tokens seed 0, quantized in 12 s" in listing
    )
    assert "in progress or interrupted" in listing and "4 entries" in listing

    assert main(["clear", "--cache-dir", str(tmp_path), "--kind", "quantized", "--match", "smollm2", "--dry-run"]) == 0
    assert (tmp_path / "quantized" / "smollm2-135m-awq-w4g64-cccc").is_dir()
    assert main(["clear", "--cache-dir", str(tmp_path), "--kind", "quantized"]) == 0
    left = sorted(path.name for path in (tmp_path / "quantized").iterdir())
    assert left == [f"{TEMPORARY_PREFIX}x-dddd"]  # a build in progress is kept without --partial
    assert (tmp_path / "models" / "tiny-llama-aaaa").is_dir()
    assert main(["clear", "--cache-dir", str(tmp_path), "--partial"]) == 0
    assert not any((tmp_path / "quantized").iterdir()) and not any((tmp_path / "models").iterdir())
    assert main(["list", "--cache-dir", str(tmp_path), "--kind", "nonsense"]) == 1
