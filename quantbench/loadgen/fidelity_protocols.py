"""One small request function per server protocol for the served fidelity: each scores one window's
tokens through the server and returns the server's top-k (token id, log-probability) per scored token.

Every protocol sends token ids, not text, so the server scores exactly the reference's tokens.

- `llama-server`: its native `/completion` (the OpenAI endpoints give no prompt log-probabilities and
  refuse `echo`). Teacher-forced, one scored token per request: prompt = the window's tokens before
  it, `n_predict: 1`, `n_probs: k`, `post_sampling_probs: false` (log-probabilities of the model's own
  distribution, before any sampler), and `cache_prompt: true`, so that the slot keeps the window's
  prefix and each request decodes only the tokens it adds.
- `vllm`: `/v1/completions` with `prompt_logprobs: k`, one request per window, `max_tokens: 1`;
  `prompt_logprobs[i]` is the distribution of token i given the tokens before it (vLLM's raw
  log-probabilities: `logprobs_mode` raw_logprobs, its default), the top k plus the actual token.
- `completions-echo`: the legacy completions API's way, `echo: true` with `logprobs: k` and
  `max_tokens: 1`; `choices[0].logprobs.top_logprobs[i]` maps tokens to log-probabilities. vLLM names
  the tokens by id when asked (`return_tokens_as_token_ids`: "token_id:123"); a server that names
  them by text has them mapped back through the model's tokenizer (`token_of`), a text that is no
  single token's is left out (its mass then falls in the bucket of quantbench/quality/served.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from quantbench.errors import QuantbenchError

if TYPE_CHECKING:
    import aiohttp

    from quantbench.engines.openai import Endpoint
    from quantbench.quality.served import TopK

LLAMA_SERVER = "llama-server"
VLLM = "vllm"
COMPLETIONS_ECHO = "completions-echo"
PROTOCOLS = (LLAMA_SERVER, VLLM, COMPLETIONS_ECHO)
# What each protocol costs, recorded with the measurement (served_fidelity_method).
METHODS = {
    LLAMA_SERVER: "llama-server /completion, teacher-forced: one request per scored token (prompt = the window's "
    "tokens before it, n_predict 1, n_probs k, post_sampling_probs false, cache_prompt true)",
    VLLM: "vLLM /v1/completions with prompt_logprobs k: one request per window",
    COMPLETIONS_ECHO: "/v1/completions with echo and logprobs k: one request per window",
}
TOKEN_ID_PREFIX = "token_id:"  # vLLM's return_tokens_as_token_ids
ERROR_BODY_CHARS = 300


class FidelityRequestFailed(QuantbenchError):
    """The server refused or failed a fidelity request; the message quotes its answer."""


@dataclass(frozen=True)
class WindowTask:
    """One window's part of the fidelity run: its tokens up to the last scored one, and the offsets of
    the scored tokens (each predicted from the tokens before it)."""

    window: int
    token_ids: list[int]
    positions: list[int]


@dataclass
class Scored:
    """A window's scored tokens as far as the run got, and the span of each request (perf_counter s)."""

    top_k: list[TopK] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Asking:
    """What every fidelity request of a run shares."""

    session: aiohttp.ClientSession
    endpoint: Endpoint
    top_k: int
    timeout_s: float  # one request (serve.request_timeout_s)
    keep_going: Callable[[], bool]  # False: stop before the next request (the level under load ended)
    token_of: Callable[[str], int | None] | None = None  # completions-echo: a token's text -> its id


async def _post(asking: Asking, path: str, body: dict[str, Any]) -> Any:
    """The JSON answer of one request; FidelityRequestFailed quoting the server or the wire."""
    import aiohttp

    from quantbench.loadgen.client import describe_transport_error

    url = asking.endpoint.base_url + path

    async def once() -> tuple[int, str]:
        async with asking.session.post(url, json=body, headers=asking.endpoint.headers) as response:
            return response.status, await response.text(errors="replace")

    for attempt in (1, 2):  # a second time only for a stale keep-alive connection (loadgen/client.py)
        try:
            status, text = await asyncio.wait_for(once(), timeout=asking.timeout_s)
            break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            if attempt == 1 and not isinstance(error, aiohttp.ClientConnectorError):
                continue
            raise FidelityRequestFailed(describe_transport_error(error, url)) from None
        except aiohttp.ClientError as error:
            raise FidelityRequestFailed(describe_transport_error(error, url)) from None
        except asyncio.TimeoutError:
            raise FidelityRequestFailed(
                f"POST {url} timed out after {asking.timeout_s:g} s (serve.request_timeout_s)"
            ) from None
    if status != 200:
        raise FidelityRequestFailed(f"POST {url}: HTTP {status}: {' '.join(text.split())[:ERROR_BODY_CHARS]}")
    try:
        return json.loads(text)
    except ValueError:
        raise FidelityRequestFailed(f"POST {url}: an answer that is not JSON: {text[:100]!r}") from None


def parse_llama_server(payload: Any) -> TopK:
    """The generated token's top n_probs of a llama-server /completion answer (non-streamed)."""
    try:
        [first] = payload["completion_probabilities"][:1]
        return [(int(entry["id"]), float(entry["logprob"])) for entry in first["top_logprobs"]]
    except (KeyError, TypeError, ValueError) as error:
        raise FidelityRequestFailed(
            "llama-server answered without completion_probabilities[0].top_logprobs (id, logprob) "
            f"({type(error).__name__}: {error}); is it llama.cpp's server, given n_probs?"
        ) from None


def parse_prompt_logprobs(payload: Any, positions: list[int]) -> list[TopK]:
    """vLLM's choices[0].prompt_logprobs at `positions`: {"<id>": {"logprob": x, "rank": r, ...}}."""
    try:
        rows = payload["choices"][0]["prompt_logprobs"]
        return [[(int(token), float(entry["logprob"])) for token, entry in rows[p].items()] for p in positions]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise FidelityRequestFailed(
            f"the answer has no choices[0].prompt_logprobs at the scored positions ({type(error).__name__}: {error})"
        ) from None


def echo_token_id(key: str, token_of: Callable[[str], int | None] | None) -> int | None:
    if key.startswith(TOKEN_ID_PREFIX):
        return int(key[len(TOKEN_ID_PREFIX) :])
    return token_of(key) if token_of is not None else None


def parse_echo(payload: Any, positions: list[int], token_of: Callable[[str], int | None] | None) -> list[TopK]:
    """choices[0].logprobs.top_logprobs at `positions` of an echoed prompt; tokens named by text that
    is no single token's are left out."""
    try:
        rows = payload["choices"][0]["logprobs"]["top_logprobs"]
        scored = []
        for p in positions:
            pairs = ((echo_token_id(key, token_of), float(value)) for key, value in rows[p].items())
            scored.append([(token, value) for token, value in pairs if token is not None])
        return scored
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise FidelityRequestFailed(
            "the echoed answer has no choices[0].logprobs.top_logprobs at the scored positions "
            f"({type(error).__name__}: {error}); does the server take echo with logprobs?"
        ) from None


async def llama_server_window(asking: Asking, task: WindowTask, scored: Scored) -> None:
    for position in task.positions[len(scored.top_k) :]:
        if not asking.keep_going():
            return
        body = {
            "prompt": task.token_ids[:position],
            "n_predict": 1,
            "n_probs": asking.top_k,
            "post_sampling_probs": False,
            "cache_prompt": True,
            "temperature": 0.0,
            "stream": False,
        }
        sent = time.perf_counter()
        payload = await _post(asking, "/completion", body)
        scored.top_k.append(parse_llama_server(payload))
        scored.spans.append((sent, time.perf_counter()))


async def _whole_window(
    asking: Asking, body: dict[str, Any], scored: Scored, parse: Callable[[Any], list[TopK]]
) -> None:
    if scored.top_k or not asking.keep_going():
        return
    if asking.endpoint.model is not None:
        body["model"] = asking.endpoint.model
    sent = time.perf_counter()
    payload = await _post(asking, "/v1/completions", body)
    scored.top_k.extend(parse(payload))
    scored.spans.append((sent, time.perf_counter()))


async def vllm_window(asking: Asking, task: WindowTask, scored: Scored) -> None:
    body = {
        "prompt": task.token_ids,
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": asking.top_k,
        "stream": False,
    }
    await _whole_window(asking, body, scored, lambda payload: parse_prompt_logprobs(payload, task.positions))


async def echo_window(asking: Asking, task: WindowTask, scored: Scored) -> None:
    body = {
        "prompt": task.token_ids,
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": asking.top_k,
        "return_tokens_as_token_ids": True,
        "stream": False,
    }
    await _whole_window(asking, body, scored, lambda payload: parse_echo(payload, task.positions, asking.token_of))


# One request function per protocol: (what every request shares, the window, what was scored so far).
SCORE_WINDOW: dict[str, Callable[[Asking, WindowTask, Scored], Awaitable[None]]] = {
    LLAMA_SERVER: llama_server_window,
    VLLM: vllm_window,
    COMPLETIONS_ECHO: echo_window,
}
