"""What a server accepts is probed at its start, and output tokens are counted from the most
trusted source the responses give: usage, then a request that stopped at its max_tokens, then the
tokenizer. The stand-in (tests/support/serve_standin.py) plays a server that refuses stream_options and
sends usage anyway, one that sends usage only when asked (transformers serve 5.25, vLLM), one that
takes stream_options but never sends usage, and replays transcripts of transformers serve 5.24/5.25."""

from __future__ import annotations

import json

import pytest
from support import FIXTURES

from quantbench.loadgen.capabilities import ASK_FOR_USAGE, ProbeFailed, offered_fields, probe_capabilities
from quantbench.loadgen.client import Exchange
from quantbench.loadgen.load import Level, LevelRun
from quantbench.loadgen.prompts import Prompt
from quantbench.loadgen.records import level_records, output_tokens

PROMPT = Prompt("p0", "hello", chat=True, input_tokens=3)
GENERATION_CONFIG = {"generation_config": json.dumps({"max_new_tokens": 2, "do_sample": False, "eos_token_id": -1})}


def test_a_server_that_refuses_stream_options_and_sends_usage_anyway(standin):
    # HTTP 422 for stream_options, usage in the last chunk regardless.
    endpoint = standin("--standin-refuse", "stream_options", "--standin-usage", "always")
    found = probe_capabilities(endpoint, PROMPT, offered_fields(GENERATION_CONFIG, {}), 30.0)
    assert found.accepted == ("generation_config",)
    assert list(found.refused) == ["stream_options"] and found.refused["stream_options"].startswith("HTTP 422")
    assert found.usage_in_stream is True
    assert found.probe_requests == 4  # everything, the bare request, then each field in turn
    metrics = found.metrics()
    assert metrics["stream_options_accepted"] is False and metrics["usage_in_stream"] is True
    assert (
        metrics["request_fields"] == "generation_config"
        and "stream_options: HTTP 422" in metrics["refused_request_fields"]
    )


def test_a_server_that_sends_usage_only_when_asked(standin):
    # transformers serve 5.25, vLLM: stream_options taken, usage only with include_usage.
    endpoint = standin("--standin-usage", "on-request")
    found = probe_capabilities(endpoint, PROMPT, offered_fields(GENERATION_CONFIG, {}), 30.0)
    assert found.accepted == ("stream_options", "generation_config") and found.refused == {}
    assert found.usage_in_stream is True and found.probe_requests == 1
    assert found.options(offered_fields({"generation_config": "x"}, {})) == {**ASK_FOR_USAGE, "generation_config": "x"}


def test_a_server_that_takes_stream_options_without_sending_usage(standin):
    endpoint = standin("--standin-usage", "never")
    found = probe_capabilities(endpoint, PROMPT, offered_fields({}, {}), 30.0)
    assert found.accepted == ("stream_options",) and found.usage_in_stream is False
    assert found.metrics()["usage_in_stream"] is False


def test_an_extra_body_field_the_server_refuses_is_dropped_not_fatal(standin):
    endpoint = standin("--standin-refuse", "ignore_eos", "--standin-usage", "on-request")
    found = probe_capabilities(endpoint, PROMPT, offered_fields({}, {"ignore_eos": True, "top_k": 1}), 30.0)
    assert found.accepted == ("stream_options", "top_k") and list(found.refused) == ["ignore_eos"]
    assert found.usage_in_stream is True


def test_a_server_that_fails_even_the_bare_request_fails_the_probe(standin):
    endpoint = standin("--standin-fail-every", "1")
    with pytest.raises(ProbeFailed, match="smallest request.*HTTP 500"):
        probe_capabilities(endpoint, PROMPT, offered_fields({}, {}), 30.0)


SSE = FIXTURES / "sse"  # transcripts recorded from real servers


@pytest.mark.parametrize(("release", "usage_unasked"), [("5.24", True), ("5.25", False)])
def test_transcripts_of_transformers_serve_5_24_and_5_25(standin, release, usage_unasked):
    """Recorded from a real `transformers serve` of each release on SmolLM2-135M (chat, 8 tokens,
    --continuous-batching on CPU): both refuse ignore_eos with HTTP 422 and take stream_options and
    generation_config; 5.24 sends usage with or without stream_options, 5.25 only when asked."""
    import asyncio

    from quantbench.loadgen.client import new_session, send

    endpoint = standin("--standin-replay", str(SSE / f"transformers-{release}"))
    generation = {"generation_config": json.dumps({"max_new_tokens": 8, "do_sample": False, "eos_token_id": -1})}
    found = probe_capabilities(endpoint, PROMPT, offered_fields({"ignore_eos": True, **generation}, {}), 30.0)
    assert found.accepted == ("stream_options", "generation_config") and found.usage_in_stream is True
    assert found.refused["ignore_eos"].startswith("HTTP 422") and "Unexpected fields" in found.refused["ignore_eos"]

    async def exchange(options: dict) -> Exchange:
        async with new_session(30.0) as session:
            return await send(session, endpoint, PROMPT, 8, options, 30.0)

    asked, unasked = (
        asyncio.run(exchange(found.options(offered_fields(generation, {})))),
        asyncio.run(exchange(generation)),
    )
    run = LevelRun(level=Level(0, concurrency=1), exchanges=[asked, unasked], started_at=0.0, finished_at=1.0)
    records = level_records(run, {"p0": PROMPT}, 8, lambda text: len(text.split()))
    assert [r.output_tokens for r in records] == [8, 8] and records[0].tokens_from == "usage"
    # Without stream_options, 5.25 sends no usage: the count comes from the length limit, not the tokenizer.
    assert records[1].tokens_from == ("usage" if usage_unasked else "length")


def test_output_tokens_come_from_usage_then_length_then_the_tokenizer():
    count = len  # a stand-in tokenizer: one token per character
    assert output_tokens({"completion_tokens": 16}, "length", 16, "abc", count) == (16, "usage")
    assert output_tokens({"completion_tokens": 5}, "stop", 16, "abc", count) == (5, "usage")
    assert output_tokens({}, "length", 16, "abc", count) == (16, "length")
    assert output_tokens({"prompt_tokens": 3}, "stop", 16, "abc", count) == (3, "tokenizer")
    assert output_tokens({}, None, 16, "abcd", count) == (4, "tokenizer")


def test_level_records_name_where_each_count_came_from():
    def exchange(prompt_id: str, usage, finish_reason: str | None) -> Exchange:
        return Exchange(
            prompt_id=prompt_id,
            sent_at=1.0,
            arrivals=[1.1, 1.2],
            finished_at=1.3,
            pieces=["ab", "c"],
            usage=usage,
            finish_reason=finish_reason,
            status_code=200,
        )

    run = LevelRun(
        level=Level(0, concurrency=1),
        exchanges=[
            exchange("p0", {"completion_tokens": 8, "prompt_tokens": 3}, "length"),
            exchange("p0", None, "length"),
            exchange("p0", None, "stop"),
        ],
        started_at=0.0,
        finished_at=2.0,
    )
    records = level_records(run, {"p0": PROMPT}, 8, len)
    assert [(r.output_tokens, r.tokens_from) for r in records] == [(8, "usage"), (8, "length"), (3, "tokenizer")]
    assert [r.input_tokens for r in records] == [3, 3, 3]
