"""Server-sent events and streamed chunks, on transcripts recorded from a real `transformers serve`
(tests/fixtures/sse/, SmolLM2-135M, chat and completions) and on the spec's edge cases."""

from __future__ import annotations

import pytest
from support import FIXTURES

from quantbench.loadgen.client import Exchange, read_chunk, request_body
from quantbench.loadgen.prompts import Prompt
from quantbench.loadgen.sse import Event, EventDecoder, decode_lines

SSE = FIXTURES / "sse"  # transcripts recorded from a real `transformers serve`


def replay(name: str) -> Exchange:
    exchange = Exchange(prompt_id="p", sent_at=0.0)
    for at, event in enumerate(decode_lines((SSE / name).read_text().splitlines()), start=1):
        if event.is_done:
            break
        read_chunk(exchange, event.data, float(at))
    return exchange


def test_recorded_chat_stream_from_transformers_serve():
    exchange = replay("transformers_chat_stream.txt")
    # The first event carries only the role: no text, so it is not an arrival (TTFT starts at text).
    assert exchange.arrivals[0] == 2.0
    assert len(exchange.arrivals) == 16
    assert exchange.text.startswith("Hello there")
    assert exchange.usage == {"completion_tokens": 16, "prompt_tokens": 32, "total_tokens": 48}
    assert exchange.finish_reason == "length"
    assert exchange.error is None


def test_recorded_completion_stream_from_transformers_serve():
    exchange = replay("transformers_completion_stream.txt")
    assert exchange.text.startswith(" Paris.")
    assert len(exchange.arrivals) == 8
    assert exchange.usage["completion_tokens"] == 8
    assert exchange.finish_reason == "length"


def test_spec_edge_cases():
    lines = [
        ": keep-alive comment",
        "event: message",
        "data: first line",
        "data:second line",  # no space after the colon
        "",
        "id: 7",
        "retry: 1000",
        "data: {}",
        "",
        "",  # a blank line with no data dispatches nothing
        "data: [DONE]",
    ]  # the body ends without a blank line after [DONE]
    events = list(decode_lines(lines))
    assert events == [Event("first line\nsecond line"), Event("{}", id="7"), Event("[DONE]", id="7")]
    assert events[-1].is_done


def test_crlf_transcript_splits_like_lf():
    text = 'data: {"choices": [{"index": 0, "text": "a"}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert [event.data for event in decode_lines(text.splitlines())] == [
        '{"choices": [{"index": 0, "text": "a"}]}',
        "[DONE]",
    ]


def test_decoder_returns_an_event_only_on_its_blank_line():
    decoder = EventDecoder()
    assert decoder.line("data: x") is None
    assert decoder.line("") == Event("x")
    assert decoder.flush() is None


def test_error_event_in_the_stream_fails_the_request():
    exchange = Exchange(prompt_id="p", sent_at=0.0)
    read_chunk(exchange, '{"error": "CUDA out of memory"}', 1.0)
    assert exchange.error == "server error in the stream: CUDA out of memory"
    assert exchange.arrivals == []


def test_a_chunk_that_is_not_an_object_is_malformed():
    with pytest.raises(ValueError, match="not a JSON object"):
        read_chunk(Exchange(prompt_id="p", sent_at=0.0), "[1, 2]", 1.0)


def test_request_body_per_protocol():
    options = {"stream_options": {"include_usage": True}, "ignore_eos": True}
    chat = request_body(Prompt("a", "hi", chat=True, input_tokens=3), "m", 16, options)
    assert chat == {
        "max_tokens": 16,
        "temperature": 0.0,
        "stream": True,
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    plain = request_body(Prompt("a", "hi", chat=False, input_tokens=3), None, 4, {})
    assert plain == {"max_tokens": 4, "temperature": 0.0, "stream": True, "prompt": "hi"}
