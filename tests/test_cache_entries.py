"""The cache's one entry mechanism for artefacts built from a recipe (quantized checkpoints, GGUF
files): entry names and keys as earlier versions wrote them, manifests written before still read,
and `quantbench cache list` describing both kinds."""

from __future__ import annotations

import json
from pathlib import Path

from quantbench.backends.checkpoint_cache import CheckpointRecipe
from quantbench.cache import MANIFEST_FILE, atomic_directory, entry_path, is_usable, read_manifest, write_manifest
from quantbench.gguf import store
from quantbench.gguf.store import GgufRecipe

CALIBRATION = {"source": {"option": "builtin"}, "n_samples": 128, "seq_len": 512, "seed": 0}
GPTQ = CheckpointRecipe("tiny-llama", "abc123", None, "gptq", 4, 128, {"sym": True}, CALIBRATION, "7.7.0")
AUTOROUND = CheckpointRecipe(
    "tiny-llama",
    "abc123",
    "main",
    "autoround",
    4,
    -1,
    {"sym": True, "iters": 1, "batch_size": 8},
    {"source": {"option": "builtin"}, "n_samples": 2, "seq_len": 64, "seed": 0},
    "0.16.0",
    engine="auto-round",
)
GGUF = GgufRecipe("tiny-llama", "abc123", None, "q4_k_m", "0.3.16")


def test_entries_keep_the_names_and_keys_earlier_versions_wrote(tmp_path):
    """Pinned: the names the cache's entries had before the mechanism was shared, so a cache
    filled by an earlier version is still found."""
    assert entry_path(tmp_path, GPTQ) == tmp_path / "quantized" / "tiny-llama-gptq-w4g128-45f3bcc48fc8ed56"
    assert entry_path(tmp_path, AUTOROUND) == tmp_path / "quantized" / "tiny-llama-autoround-w4gall-83495e186a322a40"
    assert entry_path(tmp_path, GGUF) == tmp_path / "gguf" / "tiny-llama-q4_k_m-e458dc79abd333e8"
    assert GPTQ.key == "45f3bcc48fc8ed56" and GPTQ.entry_name().endswith(GPTQ.key)


def test_the_manifest_is_written_last_and_names_the_recipe(tmp_path):
    entry = entry_path(tmp_path, AUTOROUND)
    assert not is_usable(entry) and read_manifest(entry) == {}
    with atomic_directory(entry) as directory:
        (directory / "model.safetensors").write_bytes(b"weights")
        assert not is_usable(directory)  # no manifest yet, and not in place
        write_manifest(directory, AUTOROUND, {"quantize_s": 3.0})
    assert is_usable(entry)
    manifest = read_manifest(entry)
    assert (
        manifest["key"] == AUTOROUND.key
        and manifest["model_name"] == "tiny-llama"
        and manifest["engine"] == "auto-round"
    )
    assert (
        manifest["auto-round"] == "0.16.0"
        and manifest["knobs"]["iters"] == 1
        and manifest["built"] == {"quantize_s": 3.0}
    )


def test_entries_with_manifests_written_before_are_used_and_listed(tmp_path, monkeypatch, capsys):
    from quantbench.cli.cache import main

    # What the previous version wrote: the checkpoint's manifest with key and engine, the GGUF one without a key.
    checkpoint = entry_path(tmp_path, GPTQ)
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"0" * 1000)
    (checkpoint / MANIFEST_FILE).write_text(
        json.dumps(
            {
                "key": GPTQ.key,
                "model_name": "tiny-llama",
                "engine": "gptqmodel",
                **GPTQ.key_payload(),
                "built": {"quantize_s": 12.0, "calibration_windows": 2},
            },
            indent=2,
            sort_keys=True,
        )
    )
    gguf = entry_path(tmp_path, GGUF)
    gguf.mkdir(parents=True)
    (gguf / store.GGUF_FILE).write_bytes(b"GGUF")
    (gguf / MANIFEST_FILE).write_text(
        json.dumps({"model_name": "tiny-llama", **GGUF.key_payload(), "built": {"quantize_s": 4.0}})
    )
    assert is_usable(checkpoint) and is_usable(gguf)

    monkeypatch.setattr(store, "describe_file", lambda path: {"bits_per_weight": 4.5, "tensor_types": "Q4_K:14"})
    assert main(["list", "--cache-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "gptq 4-bit g128, calibration builtin 2x512 tokens seed 0, quantized in 12 s, gptqmodel 7.7.0" in listing
    assert "GGUF q4_k_m, 4.50 bits/weight, linear layers Q4_K:14, made in 4 s, llama-cpp-python 0.3.16" in listing
    assert "2 entries" in listing


def test_the_gguf_store_does_not_import_the_backends():
    """The cache entry mechanism lives below both: gguf/store.py and backends/gguf.py no longer import each other."""
    source = Path(store.__file__).read_text()
    assert "quantbench.backends" not in source
