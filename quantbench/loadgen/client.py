"""One streamed request to an OpenAI-compatible server, recorded as it arrives.

aiohttp streams the response (its C HTTP parser costs less than half of httpx's pure-Python stack per
chunk: benchmarks/client_overhead.py); quantbench.loadgen.sse decodes its events. Times are
`time.perf_counter()` seconds: sent just before the request goes out, and one arrival per event
that carries generated text. What is derived from them (TTFT, TPOT, ITL) is computed afterwards
from the record (quantbench.loadgen.metrics), never inside the request loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quantbench.loadgen.rendering import chat_messages, plain_text
from quantbench.loadgen.sse import EventDecoder

if TYPE_CHECKING:
    import aiohttp

    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.prompts import Prompt

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
ERROR_BODY_CHARS = 300
# Sends again on a fresh connection after a stale keep-alive one (is_stale_connection); more than
# one, since with several users more than one pooled connection may have been closed at once.
STALE_CONNECTION_RETRIES = 2


@dataclass
class Exchange:
    """What one request saw. Times are perf_counter seconds; `arrivals` has one entry per event with text."""

    prompt_id: str
    sent_at: float
    arrivals: list[float] = field(default_factory=list)
    finished_at: float | None = None
    pieces: list[str] = field(default_factory=list)  # the generated text, as it arrived
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    status_code: int | None = None
    error: str | None = None
    connection_retries: int = 0  # sends again after a stale keep-alive connection (STALE_CONNECTION_RETRIES)
    scheduled_at: float | None = None  # open loop: when the request was due (its send-time error is sent_at - this)
    # A conversation's later turn: the (role, content) messages it carried before its own text
    # (quantbench.loadgen.conversation), from which its input count is known afterwards.
    history: tuple[tuple[str, str], ...] = ()
    cancelled: bool = False  # in flight when its level stopped early (over-saturated): neither done nor failed

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def request_body(prompt: Prompt, model: str | None, max_tokens: int, options: dict[str, Any]) -> dict[str, Any]:
    """Greedy, streamed, at most max_tokens; `options` are the optional fields the server accepted
    (quantbench.loadgen.capabilities: stream_options, the engine's end-of-sequence field, extra_body)."""
    body: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "stream": True}
    if model is not None:
        body["model"] = model
    if prompt.chat:
        body["messages"] = chat_messages(prompt)
    else:
        body["prompt"] = plain_text(prompt)
    return {**body, **options}


def _text_of(choice: dict[str, Any]) -> str:
    """Generated text of one streamed choice: a chat delta's content, or a completion's text."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta.get("content") or ""
    return choice.get("text") or ""


def read_chunk(exchange: Exchange, data: str, arrived_at: float) -> None:
    """Apply one event's JSON to the exchange (an `error` object ends it as failed)."""
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        raise ValueError(f"a stream event that is not a JSON object: {data[:100]!r}")
    if chunk.get("error") is not None:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        exchange.error = f"server error in the stream: {message}"
        return
    if chunk.get("usage"):
        exchange.usage = chunk["usage"]
    texts = []
    for choice in chunk.get("choices") or []:
        texts.append(_text_of(choice))
        if choice.get("finish_reason"):
            exchange.finish_reason = choice["finish_reason"]
    text = "".join(texts)
    if text:  # one arrival per event with text, even when several events came in one read
        exchange.arrivals.append(arrived_at)
        exchange.pieces.append(text)


async def _stream(
    session: aiohttp.ClientSession, url: str, endpoint: Endpoint, body: dict[str, Any], exchange: Exchange
) -> None:
    decoder = EventDecoder()
    if not exchange.connection_retries:  # a retry keeps the first send's time: the user waited from then
        exchange.sent_at = time.perf_counter()
    async with session.post(url, json=body, headers=endpoint.headers) as response:
        exchange.status_code = response.status
        if response.status != 200:
            text = (await response.read()).decode(errors="replace").strip().replace("\n", " ")
            exchange.error = f"HTTP {response.status}: {text[:ERROR_BODY_CHARS]}"
            return
        pending = b""
        # Whatever bytes each network read brings; their events share that read's arrival time.
        async for data in response.content.iter_any():
            arrived_at = time.perf_counter()
            complete, newline, pending = (pending + data).rpartition(b"\n")
            if not newline:
                pending = complete + pending
                continue
            for line in complete.decode(errors="replace").split("\n"):
                event = decoder.line(line[:-1] if line.endswith("\r") else line)
                if event is None:
                    continue
                if event.is_done:
                    return
                read_chunk(exchange, event.data, arrived_at)
                if exchange.error:
                    return
        if pending:
            decoder.line(pending.rstrip(b"\r").decode(errors="replace"))
        last = decoder.flush()
        if last is not None and not last.is_done:
            read_chunk(exchange, last.data, time.perf_counter())


async def within(awaitable: Any, timeout_s: float) -> Any:
    """`awaitable` with a time limit (asyncio.TimeoutError past it). Python 3.11's asyncio.timeout runs
    it in the calling task; wait_for (3.10) starts a task of its own, which sends the request one
    event-loop iteration later: under load, a send-time error of that iteration's length."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout_s):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout=timeout_s)


def describe_transport_error(error: BaseException, url: str) -> str:
    """One line naming what went wrong on the wire (a refused connection says so)."""
    import aiohttp

    if isinstance(error, aiohttp.ClientConnectorError):
        refused = isinstance(error.os_error, ConnectionRefusedError) or "refused" in str(error).lower()
        return f"connection refused: {url}" if refused else f"cannot connect ({error.os_error}): {url}"
    if isinstance(error, asyncio.TimeoutError):
        return f"timed out: {url}"
    return f"{type(error).__name__}: {error or 'no detail'} ({url})"


def new_session(timeout_s: float) -> aiohttp.ClientSession:
    """No limit on connections (one per request in flight); `timeout_s` between two reads."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s),
    )


async def send(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    prompt: Prompt,
    max_tokens: int,
    options: dict[str, Any],
    timeout_s: float,
) -> Exchange:
    """Stream one request to completion (at most the prompt's own max_tokens, else `max_tokens`); every
    failure is recorded on the exchange, never raised."""
    import aiohttp

    path = CHAT_PATH if prompt.chat else COMPLETIONS_PATH
    url = endpoint.base_url + path
    if prompt.max_tokens and options.get("min_tokens") == max_tokens:
        # llama-cpp-python's end-of-sequence hold was made for the job's length: this request's own
        options = {**options, "min_tokens": prompt.max_tokens}
    body = request_body(prompt, endpoint.model, prompt.max_tokens or max_tokens, options)
    exchange = Exchange(prompt_id=prompt.id, sent_at=time.perf_counter())
    while True:
        try:
            await within(_stream(session, url, endpoint, body, exchange), timeout_s)
        except asyncio.TimeoutError:
            exchange.error = f"timed out after {timeout_s:g} s (serve.request_timeout_s)"
        except aiohttp.ClientError as error:
            if is_stale_connection(error, exchange) and exchange.connection_retries < STALE_CONNECTION_RETRIES:
                exchange.connection_retries += 1
                continue
            exchange.error = describe_transport_error(error, url)
        except (ValueError, KeyError, TypeError) as error:  # a stream that is not what the protocol says
            exchange.error = f"malformed stream: {type(error).__name__}: {error}"
        break
    exchange.finished_at = time.perf_counter()
    return exchange


def is_stale_connection(error: BaseException, exchange: Exchange) -> bool:
    """A pooled keep-alive connection the server had closed: the request could not be written, or the
    connection ended before any response line, so the server never answered it. llama-server closes
    its connection after every streamed response without saying `Connection: close`, and a request
    that picks that connection up before the client has read the close fails so."""
    import aiohttp

    return (
        isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
        and not isinstance(error, aiohttp.ClientConnectorError)  # could not connect at all: not a stale one
        and exchange.status_code is None
    )


async def get_json(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, Any]:
    """(status, parsed body or text) of a GET; aiohttp.ClientError or asyncio.TimeoutError on the wire."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        async with session.get(url, headers=headers) as response:
            text = await response.text(errors="replace")
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text
