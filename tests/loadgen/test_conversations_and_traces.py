"""Conversations and trace replay against the stand-in server: the history each turn's request
carries (as the server received it), trace files that cannot be replayed, and a replay's timing."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from quantbench.loadgen.client import new_session, send
from quantbench.loadgen.level_stats import usage_check, workload_columns
from quantbench.loadgen.load import Arrival, Budget, closed_loop, open_loop
from quantbench.loadgen.prompts import Prompt
from quantbench.loadgen.records import RequestRecord
from quantbench.loadgen.trace import TraceError, read_trace


def conversation(name: str, chat: bool, turns: int, system: str | None = "Be brief.") -> Prompt:
    prompts = [
        Prompt(
            id=f"{name}-{turn}",
            text=f"{name} question {turn}",
            chat=chat,
            input_tokens=10,
            max_tokens=2 + turn,
            system=system,
            conversation=name,
            turn=turn,
        )
        for turn in range(turns)
    ]
    return Prompt(**{**prompts[0].__dict__, "turns": tuple(prompts[1:])})


async def drive(endpoint, run):
    async with new_session(30.0) as session:

        async def one(prompt):
            return await send(session, endpoint, prompt, 4, {}, 30.0)

        return await run(one)


def received(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_turn_carries_the_history_with_the_replies_as_received(standin, tmp_path):
    bodies = tmp_path / "bodies.jsonl"
    endpoint = standin("--standin-record-requests", str(bodies), "--standin-delay-ms", "1")
    prompts = [conversation("a", True, 3), conversation("b", False, 2, system=None)]
    exchanges = asyncio.run(drive(endpoint, lambda one: closed_loop(one, iter(prompts), 1, Budget(5, None))))
    assert [e.prompt_id for e in exchanges] == ["a-0", "a-1", "a-2", "b-0", "b-1"] and not any(
        e.error for e in exchanges
    )
    sent = {
        entry["body"].get("messages", [{}])[-1].get("content") or entry["body"]["prompt"]: entry
        for entry in received(bodies)
    }
    third = sent["a question 2"]["body"]
    assert third["max_tokens"] == 4 and third["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a question 0"},
        {"role": "assistant", "content": " tok0 tok1"},  # the stand-in's reply to max_tokens=2
        {"role": "user", "content": "a question 1"},
        {"role": "assistant", "content": " tok0 tok1 tok2"},
        {"role": "user", "content": "a question 2"},
    ]
    plain = [entry["body"]["prompt"] for entry in received(bodies) if "prompt" in entry["body"]]
    assert plain == ["b question 0", "b question 0 tok0 tok1\n\nb question 1"]  # the history as text
    assert exchanges[2].history == (
        ("user", "a question 0"),
        ("assistant", " tok0 tok1"),
        ("user", "a question 1"),
        ("assistant", " tok0 tok1 tok2"),
    )


def test_a_conversation_reserves_its_turns_and_a_failed_turn_ends_it(standin):
    # The server fails its 2nd request: conversation a's second turn, so its third is never sent.
    endpoint = standin("--standin-fail-every", "2", "--standin-delay-ms", "1")
    budget = Budget(4, None)
    prompts = [conversation("a", True, 3), conversation("b", True, 3)]
    exchanges = asyncio.run(drive(endpoint, lambda one: closed_loop(one, iter(prompts), 1, budget)))
    assert [e.prompt_id for e in exchanges] == ["a-0", "a-1", "b-0", "b-1"]  # b cut to the requests left
    assert exchanges[1].error is not None and budget.sent == 4


def test_a_replayed_schedule_is_sent_on_time_and_conversations_wait_for_their_replies(standin):
    endpoint = standin("--standin-delay-ms", "1")
    rng = np.random.default_rng(0)
    offsets = np.cumsum(rng.exponential(1 / 100, 60))  # 100 requests per second
    arrivals = [
        Arrival(float(t), Prompt(id=f"r{i}", text="x", chat=False, input_tokens=1)) for i, t in enumerate(offsets)
    ]
    talk = conversation("c", True, 3)
    arrivals.insert(1, Arrival(float(offsets[0]), talk, (float(offsets[0]) + 0.3, 0.0)))

    async def replay(one):
        started = time.perf_counter()
        return started, await open_loop(one, iter(arrivals), Budget(None, None))

    started, exchanges = asyncio.run(drive(endpoint, replay))
    assert len(exchanges) == 63 and not any(e.error for e in exchanges)
    by_id = {e.prompt_id: e for e in exchanges}
    for arrival in arrivals:
        assert by_id[arrival.prompt.id].scheduled_at - started == pytest.approx(arrival.offset_s, abs=2e-3)
    lags_ms = [(e.sent_at - e.scheduled_at) * 1e3 for e in exchanges]
    assert min(lags_ms) >= 0 and np.percentile(lags_ms, 50) < 10  # a loaded 2-core machine: generous
    first, second, third = by_id["c-0"], by_id["c-1"], by_id["c-2"]
    assert second.scheduled_at - started == pytest.approx(offsets[0] + 0.3, abs=2e-3)  # its own time in the trace
    assert third.scheduled_at == pytest.approx(second.finished_at, abs=2e-3)  # due when the turn before ended
    assert first.finished_at <= second.sent_at and second.finished_at <= third.sent_at


BAD_TRACES = [
    (
        '{"arrival_s": 0, "input_tokens": 5, "output_tokens": 2}\n{"arrival_s": 1, "input_tokens": 5\n',
        2,
        "not valid JSON",
    ),
    ('{"arrival_s": 0, "input_tokens": 5}\n', 1, "missing output_tokens"),
    ('{"arrival_s": -1, "input_tokens": 5, "output_tokens": 2}\n', 1, "arrival_s=-1 is negative"),
    (
        '{"arrival_s": 2, "input_tokens": 5, "output_tokens": 2}\n\n'
        '{"arrival_s": 1, "input_tokens": 5, "output_tokens": 2}\n',
        3,
        "is before the line above",
    ),
    ('{"arrival_s": 0, "input_tokens": 5.5, "output_tokens": 2}\n', 1, "input_tokens must be a whole number"),
    ('{"arrival_s": 0, "input_tokens": 5, "output_tokens": 2, "prefix_group": 1}\n', 1, "needs prefix_tokens"),
    (
        '{"arrival_s": 0, "input_tokens": 50, "output_tokens": 2, "prefix_group": 1, "prefix_tokens": 8}\n'
        '{"arrival_s": 0, "input_tokens": 50, "output_tokens": 2, "prefix_group": 1, "prefix_tokens": 9}\n',
        2,
        "but 8 on line 1",
    ),
    ("[1, 2]\n", 1, "expected a JSON object"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_TRACES)
def test_a_malformed_trace_is_one_line_naming_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "trace.jsonl"
    path.write_text(text)
    with pytest.raises(TraceError, match=f"{path}, line {line}: .*{message}") as error:
        read_trace(path)
    assert "\n" not in str(error.value)


def test_an_empty_or_missing_trace_says_so(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TraceError, match="holds no requests"):
        read_trace(tmp_path / "empty.jsonl")
    with pytest.raises(TraceError, match="serve.trace: no file at"):
        read_trace(tmp_path / "absent.jsonl")


def record(requested, usage, ok=True, lag=None, output=4):
    return RequestRecord(
        level=0, concurrency=None, request_rate=1.0, request=0, prompt_id="p", ok=ok, error=None, status_code=200,
        sent_s=0.0, ttft_ms=1.0, e2e_ms=2.0, chunk_ms=[1.0], input_tokens=usage if usage is not None else requested,
        output_tokens=output, tokens_from="usage", finish_reason="length", send_lag_ms=lag,
        input_tokens_requested=requested, input_tokens_usage=usage, output_tokens_requested=output,
    )  # fmt: skip


def test_the_usage_check_compares_the_servers_count_with_the_request():
    exact = usage_check([record(100, 100), record(300, 300)])
    assert exact["input_tokens_usage_error_pct"] == 0 and exact["input_tokens_usage_mean"] == 200
    off = usage_check([record(100, 101), record(300, 303), record(50, None)])
    assert off["input_tokens_usage_error_pct"] == pytest.approx(1.0) and off["input_tokens_requested_mean"] == 200
    assert off["input_tokens_usage_note"] == "1 of 3 requests without usage"
    none = usage_check([record(100, None)])
    assert none["input_tokens_usage_error_pct"] is None and "reported no usage" in none["input_tokens_usage_note"]
    columns = workload_columns([record(100, 100, lag=0.5, output=2), record(300, 300, lag=1.5, output=8)])
    assert columns["input_tokens_p50"] == 200 and columns["output_tokens_p90"] == pytest.approx(7.4)
    assert columns["send_lag_p50_ms"] == 1.0 and columns["send_lag_max_ms"] == 1.5
    assert workload_columns([record(10, 10)])["send_lag_p99_ms"] is None  # closed loop: nothing scheduled
