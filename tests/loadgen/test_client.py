"""The client against a loopback server that closes its connections the way llama-server does
(after a streamed response, without `Connection: close`), or before it answers at all."""

from __future__ import annotations

import asyncio

from quantbench.engines.openai import Endpoint
from quantbench.loadgen.client import STALE_CONNECTION_RETRIES, new_session, send
from quantbench.loadgen.prompts import Prompt

PROMPT = Prompt(id="p", text="hello", chat=False, input_tokens=2)
EVENTS = b'data: {"choices": [{"text": "a"}]}\n\ndata: {"choices": [{"text": "b", "finish_reason": "length"}]}\n\n'
EVENTS += b"data: [DONE]\n\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(EVENTS), EVENTS)


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


async def serve_and_send(dropped: int, n_requests: int) -> tuple[list, int]:
    """Send n_requests one after another on one session; the server closes the first `dropped`
    connections without answering and every other one after its response. Returns the exchanges
    and the connections the server saw."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await read_request(reader)
            if connections > dropped:
                writer.write(RESPONSE)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}", model="m")
    try:
        async with new_session(10.0) as session:
            exchanges = [await send(session, endpoint, PROMPT, 2, {}, 10.0) for _ in range(n_requests)]
    finally:
        server.close()
        await server.wait_closed()
    return exchanges, connections


def test_a_connection_closed_before_any_answer_is_sent_again_and_keeps_the_first_send_time():
    [exchange], connections = asyncio.run(serve_and_send(dropped=1, n_requests=1))
    assert exchange.error is None and exchange.text == "ab" and exchange.finish_reason == "length"
    assert exchange.connection_retries == 1 and connections == 2
    assert exchange.sent_at < exchange.arrivals[0] <= exchange.finished_at


def test_a_server_that_never_answers_fails_the_request_after_the_retries():
    [exchange], connections = asyncio.run(serve_and_send(dropped=99, n_requests=1))
    assert exchange.error is not None and "ServerDisconnected" in exchange.error
    assert exchange.connection_retries == STALE_CONNECTION_RETRIES and connections == 1 + STALE_CONNECTION_RETRIES


def test_requests_on_connections_the_server_closes_after_every_response_all_succeed():
    exchanges, connections = asyncio.run(serve_and_send(dropped=0, n_requests=20))
    assert [exchange.error for exchange in exchanges] == [None] * 20
    assert all(exchange.text == "ab" for exchange in exchanges) and connections >= 20


def test_a_request_past_its_time_limit_is_recorded_as_timed_out():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)  # never answers within the limit
        writer.close()

    async def run():
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        endpoint = Endpoint(base_url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", model="m")
        try:
            async with new_session(10.0) as session:
                return await send(session, endpoint, PROMPT, 2, {}, 0.3)
        finally:
            server.close()

    exchange = asyncio.run(run())
    assert exchange.error == "timed out after 0.3 s (serve.request_timeout_s)"
    assert 0.3 <= exchange.finished_at - exchange.sent_at < 2
