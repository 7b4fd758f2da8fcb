"""What a server accepts, found out at its start with a few tiny requests instead of assumed per version.

A request's optional fields are offered in order: `stream_options.include_usage` (usage in the
stream), then the engine's own fields (e.g. vLLM's `ignore_eos`, transformers serve's
`generation_config`), then `engine.extra_body`. The probe first sends one request with all of
them; where the server refuses it, it sends the bare request (which must succeed) and adds the
fields back one at a time, keeping each one the server takes beside those already kept. A field
refused with an HTTP 4xx answer is dropped with a warning and recorded, never a failed job: the
server may take a field in one release and refuse it in another, and what it sends changes too
(transformers serve 5.24 sent usage in every stream; since 5.25 it sends usage only when asked with
stream_options; both answer `ignore_eos` with HTTP 422: tests/fixtures/sse/transformers-5.2*).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quantbench.errors import QuantbenchError

if TYPE_CHECKING:
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.client import Exchange
    from quantbench.loadgen.prompts import Prompt

log = logging.getLogger("quantbench")

USAGE_FIELD = "stream_options"
ASK_FOR_USAGE = {USAGE_FIELD: {"include_usage": True}}
PROBE_MAX_TOKENS = 2  # enough to see a stream with text and its end; costs a fraction of a second


class ProbeFailed(QuantbenchError):
    """Even the bare request failed: the server cannot be driven at all."""


@dataclass(frozen=True)
class ServerCapabilities:
    """The probe's findings; `accepted` names the optional fields every request of the job sends."""

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)  # field -> the server's answer
    usage_in_stream: bool = False  # the probe's accepted request got usage with completion_tokens
    probe_requests: int = 0

    def options(self, offered: dict[str, Any]) -> dict[str, Any]:
        """The fields of `offered` the server accepted, with their values for the real requests."""
        return {name: value for name, value in offered.items() if name in self.accepted}

    def metrics(self) -> dict[str, Any]:
        """Recorded in result.json: flat scalars for the summary, and the whole finding."""
        return {
            "stream_options_accepted": USAGE_FIELD in self.accepted,
            "usage_in_stream": self.usage_in_stream,
            "request_fields": ",".join(self.accepted),
            "refused_request_fields": "; ".join(f"{name}: {answer}" for name, answer in self.refused.items()) or None,
            "server_capabilities": {
                "accepted_fields": list(self.accepted),
                "refused_fields": dict(self.refused),
                "usage_in_stream": self.usage_in_stream,
                "probe_requests": self.probe_requests,
            },
        }


def offered_fields(engine_options: dict[str, Any], extra_body: dict[str, Any]) -> dict[str, Any]:
    """Every optional field, in the order the probe tries them."""
    return {**ASK_FOR_USAGE, **engine_options, **extra_body}


def _refusal(exchange: Exchange) -> bool:
    """The server answered the request as malformed (a field it does not take), not as broken."""
    return (
        exchange.status_code is not None
        and 400 <= exchange.status_code < 500
        and exchange.status_code not in (401, 403, 404)
    )


def _has_usage(exchange: Exchange) -> bool:
    return bool(exchange.usage) and exchange.usage.get("completion_tokens") is not None


async def _probe(endpoint: Endpoint, prompt: Prompt, offered: dict[str, Any], timeout_s: float) -> ServerCapabilities:
    from quantbench.loadgen.client import new_session, send

    sent = 0

    async def attempt(fields: dict[str, Any]) -> Exchange:
        nonlocal sent
        sent += 1
        return await send(session, endpoint, prompt, PROBE_MAX_TOKENS, fields, timeout_s)

    async with new_session(timeout_s) as session:
        whole = await attempt(offered)
        if whole.error is None:
            return ServerCapabilities(tuple(offered), usage_in_stream=_has_usage(whole), probe_requests=sent)
        bare = await attempt({})
        if bare.error is not None:
            raise ProbeFailed(f"the server failed the smallest request (no optional field): {bare.error}")
        kept: dict[str, Any] = {}
        refused: dict[str, str] = {}
        usage = _has_usage(bare)
        for name, value in offered.items():
            exchange = await attempt({**kept, name: value})
            if exchange.error is None:
                kept[name] = value
                usage = _has_usage(exchange)
            elif _refusal(exchange):
                refused[name] = exchange.error
                log.warning(
                    "the server refused the request field %s (%s); its requests go without it", name, exchange.error
                )
            else:
                raise ProbeFailed(f"the server failed a probe request with {name}: {exchange.error}")
        return ServerCapabilities(tuple(kept), refused, usage_in_stream=usage, probe_requests=sent)


def probe_capabilities(
    endpoint: Endpoint, prompt: Prompt, offered: dict[str, Any], timeout_s: float
) -> ServerCapabilities:
    """Which of `offered` the server at `endpoint` takes, and whether it reports usage; ProbeFailed
    when the bare request fails too. `timeout_s` per request (serve.request_timeout_s)."""
    found = asyncio.run(_probe(endpoint, prompt, offered, timeout_s))
    log.info(
        "server capabilities: fields %s, usage in the stream: %s (%d probe requests)",
        ", ".join(found.accepted) or "none",
        "yes" if found.usage_in_stream else "no",
        found.probe_requests,
    )
    return found
