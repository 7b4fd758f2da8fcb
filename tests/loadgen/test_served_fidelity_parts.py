"""The pieces of the served fidelity that need no server: each protocol's answer read from payloads
recorded from the real servers (tests/fixtures/fidelity/), the settings' errors, which protocol an
engine gets, the overlap of a run with its level, the launch request it widens, and the
quality-adjusted goodput of a level."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from support import FIXTURES

from quantbench.errors import JobSkipped
from quantbench.loadgen.fidelity_probe import ProbeRun
from quantbench.loadgen.fidelity_protocols import (
    FidelityRequestFailed,
    Scored,
    parse_echo,
    parse_llama_server,
    parse_prompt_logprobs,
)
from quantbench.loadgen.fidelity_settings import check_settings, protocol_for
from quantbench.loadgen.quality_goodput import between_levels, quality_goodput_columns, top1_limit_problem

RECORDED = FIXTURES / "fidelity"


def recorded(name: str):
    return json.loads((RECORDED / name).read_text())


def test_llama_server_completion_probabilities_as_recorded():
    exchange = recorded("llama_server_completion.json")  # {"server", "request", "response"}
    payload = exchange["response"]
    top = parse_llama_server(payload)
    assert len(top) == exchange["request"]["n_probs"]
    assert [token for token, _ in top][:1] == [payload["completion_probabilities"][0]["id"]]
    assert all(value <= 0 for _, value in top) and top == sorted(top, key=lambda pair: -pair[1])
    with pytest.raises(FidelityRequestFailed, match="completion_probabilities"):
        parse_llama_server({"content": "x"})  # asked without n_probs


def test_vllm_prompt_logprobs_as_recorded():
    exchange = recorded("vllm_prompt_logprobs.json")
    payload, asked = exchange["response"], exchange["request"]["prompt_logprobs"]
    prompt_tokens = len(payload["choices"][0]["prompt_logprobs"])
    rows = parse_prompt_logprobs(payload, [1, prompt_tokens - 1])
    assert payload["choices"][0]["prompt_logprobs"][0] is None  # the first token has no prediction
    for row in rows:
        # the top k, and the prompt's own token where it is not among them
        assert len(row) in (asked, asked + 1)
        assert all(isinstance(token, int) for token, _ in row)
    with pytest.raises(FidelityRequestFailed, match="prompt_logprobs"):
        parse_prompt_logprobs(payload, [0])  # position 0 is null


def test_echoed_logprobs_as_recorded_from_vllm():
    exchange = recorded("vllm_echo.json")
    prompt = exchange["request"]["prompt"]
    rows = parse_echo(exchange["response"], list(range(1, len(prompt))), None)
    asked = exchange["request"]["logprobs"]
    assert all(len(row) in (asked, asked + 1) for row in rows)  # named by id: none is left out
    # echo's top log-probabilities are vLLM's prompt_logprobs, the same numbers as the other protocol
    same = parse_prompt_logprobs(recorded("vllm_prompt_logprobs.json")["response"], [1])[0]
    assert dict(rows[0]).items() <= dict(same).items()


def test_echoed_logprobs_by_token_id_and_by_text():
    by_id = {"choices": [{"logprobs": {"top_logprobs": [None, {"token_id:5": -0.1, "token_id:9": -2.4}]}}]}
    assert parse_echo(by_id, [1], None) == [[(5, -0.1), (9, -2.4)]]
    by_text = {"choices": [{"logprobs": {"top_logprobs": [None, {" the": -0.2, " a": -1.9, "??": -3.0}]}}]}
    token_of = {" the": 11, " a": 12}.get  # "??" is no single token's text: left out
    assert parse_echo(by_text, [1], token_of) == [[(11, -0.2), (12, -1.9)]]
    with pytest.raises(FidelityRequestFailed, match="echo"):
        parse_echo({"choices": [{"text": "x", "logprobs": None}]}, [1], token_of)


def serve_node(**overrides):
    base = {
        "fidelity": {
            "enabled": True,
            "protocol": "auto",
            "windows": 2,
            "tokens": 4,
            "top_k": 64,
            "under_load_level": -1,
        },
        "fidelity_min_top1": None,
        "fidelity_max_kld": None,
    }
    node = OmegaConf.create(base)
    for key, value in overrides.items():
        OmegaConf.update(node, key, value)
    return node


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fidelity_min_top1": 0.95}, "looks like a fraction; .* give 95"),
        ({"fidelity_min_top1": 120.0}, "is not a percentage"),
        ({"fidelity_max_kld": -0.1}, "is negative"),
        ({"fidelity.enabled": False, "fidelity_min_top1": 90.0}, "set serve.fidelity.enabled=true"),
        ({"fidelity.protocol": "grpc"}, "unknown serve.fidelity.protocol 'grpc'; choose one of: auto, llama-server"),
        ({"fidelity.tokens": 0}, "serve.fidelity.tokens must be at least 1"),
        ({"fidelity.under_load_level": 3}, r"under_load_level=3, but the job has 2 levels \(0..1"),
    ],
)
def test_settings_that_cannot_run_are_skipped_with_the_reason(overrides, message):
    with pytest.raises(JobSkipped, match=message):
        check_settings(serve_node(**overrides), n_levels=2)


def test_good_settings_pass_and_off_is_not_checked():
    check_settings(serve_node(fidelity_min_top1=99.0, fidelity_max_kld=0.05), n_levels=2)
    check_settings(serve_node(**{"fidelity.enabled": False, "fidelity.protocol": "grpc"}), n_levels=1)


def test_protocol_by_engine():
    assert protocol_for("auto", "llama.cpp") == ("llama-server", None)
    assert protocol_for("auto", "vllm") == ("vllm", None)
    assert protocol_for("auto", "openai") == ("completions-echo", None)
    protocol, reason = protocol_for("auto", "transformers")
    assert protocol is None and "returns no log-probabilities" in reason and "5.25" in reason
    assert protocol_for("llama-server", "transformers") == ("llama-server", None)  # asked by name: tried
    assert "name one with serve.fidelity.protocol" in protocol_for("auto", "someengine")[1]


def test_overlap_of_a_run_with_its_level():
    run = ProbeRun([Scored(spans=[(0.0, 1.0), (1.0, 2.0)]), Scored(spans=[(2.0, 4.0)])], 0.0, 4.0)
    assert run.overlap(1.0, 4.0) == pytest.approx(0.75)  # 3 of its 4 request-seconds
    assert run.overlap(10.0, 11.0) == 0.0
    assert ProbeRun([Scored()], 0.0, 1.0).overlap(0.0, 1.0) is None


def test_quality_goodput_of_a_level():
    with_slo = {"goodput_per_s": 3.0, "request_throughput_per_s": 4.0}
    good = {"served_top1_agree": 97.0, "served_kld_mean": 0.01}
    bad = {"served_top1_agree": 80.0, "served_kld_mean": 0.2}
    columns = quality_goodput_columns(with_slo, good, 95.0, 0.05)
    assert columns["quality_goodput_per_s"] == 3.0 and columns["fidelity_meets_limits"] is True
    assert columns["quality_goodput_basis"] == "goodput_per_s (serve.slo)"
    columns = quality_goodput_columns(with_slo, bad, 95.0, 0.05)
    assert columns["quality_goodput_per_s"] == 0.0 and columns["fidelity_meets_limits"] is False
    assert columns["fidelity_misses"] == ("served top-1 agreement 80.0 % < 95 %; served KL divergence 0.2 > 0.05 nats")
    no_slo = {"goodput_per_s": None, "request_throughput_per_s": 4.0}
    columns = quality_goodput_columns(no_slo, good, None, 0.05)
    assert columns["quality_goodput_per_s"] == 4.0
    assert columns["quality_goodput_basis"] == "request_throughput_per_s (no serve.slo)"
    assert quality_goodput_columns(no_slo, good, None, None)["quality_goodput_per_s"] is None  # no limit set
    assert quality_goodput_columns(no_slo, None, 95.0, None)["quality_goodput_per_s"] is None  # not measured
    assert top1_limit_problem(99.0, "x") is None and "looks like a fraction" in top1_limit_problem(0.99, "x")


def test_between_two_levels_the_worse_fidelity_applies():
    lower = {"served_top1_agree": 99.0, "served_kld_mean": 0.01, "quality_goodput_per_s": 2.0}
    upper = {"served_top1_agree": 96.0, "served_kld_mean": 0.03, "quality_goodput_per_s": 4.0}
    both = between_levels({**lower, "fidelity_meets_limits": True}, {**upper, "fidelity_meets_limits": True}, 0.5)
    assert (both["served_top1_agree"], both["served_kld_mean"], both["quality_goodput_per_s"]) == (96.0, 0.03, 3.0)
    one = between_levels({**lower, "fidelity_meets_limits": True}, {**upper, "fidelity_meets_limits": False}, 0.5)
    assert one["quality_goodput_per_s"] == 0.0 and one["fidelity_meets_limits"] is False


def test_the_launch_request_is_widened_for_the_run(compose_config):
    from dataclasses import replace

    from quantbench.engines.base import ServerRequest
    from quantbench.loadgen.fidelity_protocols import WindowTask
    from quantbench.loadgen.load import Level
    from quantbench.scenarios.serve_fidelity import FidelityWindow, ServedFidelity

    cfg = compose_config(["scenario=serve", "serve.fidelity.enabled=true", "serve.fidelity.top_k=50"])
    fidelity = ServedFidelity(cfg, "llama-server", None, [Level(0, concurrency=1), Level(1, concurrency=4)])
    fidelity.windows = [FidelityWindow(WindowTask(0, list(range(300)), [299]), None)]
    request = ServerRequest(
        weights="w", precision=None, engine=None, device=None, host="h", port=1, seed=0,
        max_concurrency=4, max_sequence_tokens=100,
    )  # fmt: skip
    widened = fidelity.server_request(request)
    assert (widened.max_concurrency, widened.max_sequence_tokens, widened.max_logprobs) == (5, 301, 50)
    assert fidelity.server_request(replace(request, max_concurrency=None)).max_concurrency is None  # open loop
    unavailable = ServedFidelity(cfg, None, "no log-probabilities", [Level(0, concurrency=1)])
    assert unavailable.server_request(request) == request


def test_a_level_says_when_its_warm_up_has_ended():
    import asyncio

    from quantbench.loadgen.client import Exchange
    from quantbench.loadgen.load import Budget, Level, run_level
    from quantbench.loadgen.prompts import Prompt

    events = []

    async def send(prompt):
        events.append(prompt.id)
        return Exchange(prompt_id=prompt.id, sent_at=0.0, finished_at=0.0)

    def prompts(name):
        return (Prompt(f"{name}{i}", "text", False, 1) for i in range(10))

    asyncio.run(
        run_level(
            Level(0, concurrency=2),
            send,
            prompts("m"),
            list(prompts("w"))[:2],
            lambda: Budget(3, None),
            None,
            on_measure=lambda: events.append("measuring"),
        )
    )
    assert events == ["w0", "w1", "measuring", "m0", "m1", "m2"]
