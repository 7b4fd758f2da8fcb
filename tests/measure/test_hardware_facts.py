"""What a job records for the analysis: hardware facts from the one table (conf/hardware options)
and where each came from, the KV-cache size and activation dtype (in a real job, and a report built
from a copied sweep directory alone: tests/e2e/test_copied_sweep_report.py)."""

from __future__ import annotations

import pytest

from quantbench.config import plugin_configs
from quantbench.measure import hardware_facts as hardware
from quantbench.measure.kv_cache import KvShape, activation_dtype, kv_cache_bytes_per_token, kv_shape_from_config
from quantbench.runtime.device import Device, cpu_model_name

pytestmark = pytest.mark.usefixtures("fresh_hardware_table")


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device_name, option",
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA A10", "a10"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA L4", "l4"),
        ("Tesla T4", "t4"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("NVIDIA GeForce RTX 2080 Ti", "rtx2080ti"),
        ("NVIDIA GeForce RTX 3090", "rtx3090"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("NVIDIA RTX A6000", "rtx-a6000"),
        ("Quadro RTX 8000", "quadro-rtx8000"),
    ],
)
def test_a_gpu_name_matches_its_hardware_option(device_name, option):
    assert hardware.match_option("cuda", device_name, hardware.hardware_options()).name == option


def test_an_unknown_device_is_not_guessed_and_a_cpu_takes_the_cpu_option():
    options = hardware.hardware_options()
    assert hardware.match_option("cuda", "Some Future Accelerator", options) is None
    assert hardware.match_option("cuda", None, options) is None
    assert hardware.match_option("cpu", "Any CPU at all", options).name == "cpu"


def test_every_gpu_option_is_a_complete_entry_that_its_own_label_matches():
    options = hardware.hardware_options()
    gpus = [option for option in options if option.device == "cuda"]
    assert len(gpus) >= 16
    for option in gpus:
        assert option.label and option.match and option.price_note, option.name
        assert option.price_per_hour_usd > 0 and option.memory_bandwidth_gb_s > 0 and option.memory_gb > 0, option.name
        assert hardware.match_option("cuda", option.label, options).name == option.name, option.label


def test_a_plugins_hardware_option_joins_the_table_but_cannot_replace_a_builtin(tmp_path, monkeypatch, caplog):
    package = tmp_path / "site_hardware_conf"
    (package / "hardware").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "hardware" / "mi300x.yaml").write_text(
        "defaults: [base_hardware]\nname: mi300x\ndevice: cuda\nlabel: AMD Instinct MI300X\nmatch: 'mi300x'\n"
        "price_per_hour_usd: 4.0\nmemory_bandwidth_gb_s: 5300\n"
    )
    (package / "hardware" / "h100.yaml").write_text(
        "name: h100\ndevice: cuda\nmatch: 'h100'\nprice_per_hour_usd: 99.0\n"
    )
    (package / "hardware" / "broken.yaml").write_text("name: broken\nprice_per_hour_usd: 1.0\nbandwith_gb_s: 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    site = plugin_configs.ConfigPackage("site", "site_hardware_conf", "site-hardware", "1.0")
    monkeypatch.setattr(plugin_configs, "config_packages", lambda: [site])
    options = hardware.hardware_options()
    assert hardware.match_option("cuda", "AMD Instinct MI300X", options).memory_bandwidth_gb_s == 5300
    assert next(option for option in options if option.name == "h100").price_per_hour_usd == 3.0
    assert "broken" not in {option.name for option in options}
    assert "broken.yaml" in caplog.text and "bandwith_gb_s" in caplog.text


# --- resolution --------------------------------------------------------------------------------

H100 = Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), 85.0)


def test_auto_on_a_known_gpu_takes_the_matched_options_facts_with_their_source():
    facts = hardware.resolve_hardware_facts({"name": "auto", "device": "auto"}, H100, cache_dir=None)
    assert (facts.option, facts.price_per_hour_usd, facts.memory_bandwidth_gb_s, facts.peak_fp16_tflops) == (
        "h100",
        3.0,
        3350,
        989,
    )
    assert (
        "hardware option 'h100'" in facts.price_source
        and "matched to device 'NVIDIA H100 80GB HBM3'" in facts.price_source
    )
    assert "datasheet" in facts.bandwidth_source


def test_configured_numbers_win_and_say_so():
    configured = {"name": "h100", "device": "cuda", "price_per_hour_usd": 9.0, "memory_bandwidth_gb_s": 3350.0}
    facts = hardware.resolve_hardware_facts(configured, H100, cache_dir=None)
    assert facts.price_per_hour_usd == 9.0 and facts.price_source == "hardware config (hardware.price_per_hour_usd=9.0)"
    # An unchanged value of the option names the option and its basis.
    assert facts.bandwidth_source == "hardware option 'h100' (NVIDIA H100 SXM 80GB): datasheet"


def test_an_unknown_gpu_has_no_made_up_numbers():
    facts = hardware.resolve_hardware_facts(
        {"name": "auto"}, Device("cuda", 0, "Some Future Accelerator"), cache_dir=None
    )
    assert facts.option is None and facts.price_per_hour_usd is None and facts.memory_bandwidth_gb_s is None
    assert facts.price_source == "unknown: set hardware.price_per_hour_usd"


def test_cpu_bandwidth_is_measured_once_per_cpu_and_the_price_per_core(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hardware, "measure_copy_bandwidth_gb_s", lambda: calls.append(1) or 12.5)
    monkeypatch.setattr(hardware, "local_core_count", lambda: 4)
    cpu = Device("cpu", None, cpu_model_name())
    for _ in range(2):
        facts = hardware.resolve_hardware_facts({"name": "auto", "device": "auto"}, cpu, tmp_path)
        assert (
            facts.memory_bandwidth_gb_s == 12.5 and "measured on the machine that ran the job" in facts.bandwidth_source
        )
    assert len(calls) == 1 and list((tmp_path / "hardware").glob("cpu-*.json"))
    assert facts.option == "cpu" and facts.price_per_hour_usd == pytest.approx(4 * 0.0446)
    assert "4 cores x $0.0446/core-hour" in facts.price_source


def test_real_copy_bandwidth_measurement_is_positive():
    assert hardware.measure_copy_bandwidth_gb_s(buffer_bytes=8 * 2**20, repeats=2) > 0


# --- the KV cache ------------------------------------------------------------------------------


def test_kv_shape_from_a_config_dict_and_a_nested_text_config():
    flat = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 128}
    assert kv_shape_from_config(flat) == KvShape(layers=2, kv_heads=2, head_dim=32)
    assert kv_shape_from_config({"text_config": flat, "vision_config": {}}) == KvShape(2, 2, 32)
    assert kv_shape_from_config({"num_hidden_layers": 2}) is None


def test_kv_bytes_and_activation_dtype_from_a_loaded_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        vocab_size=100,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    assert activation_dtype(model) == "bfloat16"
    assert kv_cache_bytes_per_token(model) == 2 * 3 * 1 * 16 * 2
