"""One record per request (`requests.parquet`), kept raw: every statistic is computed from these.

Times are milliseconds from the request's own send (`chunk_ms`: arrival of each event that carried
generated text), plus `sent_s`, its send time in seconds after its level started. Output tokens
come, in this order, from the server's usage report (`tokens_from` = usage), from a request that
ended for its length (`finish_reason: length`) at the max_tokens it asked for (length), and only
then from the model's tokenizer on the text received (tokenizer), which may cut the text into
other tokens than the server generated. Input tokens: usage, else the prompt as sent, tokenized.
Beside them what was asked: `input_tokens_requested` (the prompt's own count, made with the model's
tokenizer as the server will see it; for a conversation's later turn, its history included),
`input_tokens_usage` (the server's report alone, null without one) and `output_tokens_requested`
(the request's max_tokens), so the server's count can be checked against the request's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from quantbench.loadgen.load import LevelRun
    from quantbench.loadgen.prompts import Prompt


TOKEN_SOURCES = ("usage", "length", "tokenizer")  # most trusted first


def output_tokens(
    usage: dict[str, Any], finish_reason: str | None, max_tokens: int, text: str, count_tokens: Callable[[str], int]
) -> tuple[int, str]:
    """(output tokens, where the count came from): the server's count, else max_tokens for a
    request that stopped at its length limit, else the tokenizer's count of the text."""
    if usage.get("completion_tokens") is not None:
        return int(usage["completion_tokens"]), "usage"
    if finish_reason == "length":
        return max_tokens, "length"
    return count_tokens(text), "tokenizer"


@dataclass
class RequestRecord:
    level: int  # the level's position in the job (0, 1, ...)
    concurrency: int | None
    request_rate: float | None
    request: int  # the request's position in its level, by send time
    prompt_id: str
    ok: bool
    error: str | None
    status_code: int | None
    sent_s: float
    ttft_ms: float | None  # send -> first chunk with generated text
    e2e_ms: float | None  # send -> end of the stream
    chunk_ms: list[float]
    input_tokens: int | None
    output_tokens: int | None
    tokens_from: str  # usage | length | tokenizer (TOKEN_SOURCES)
    finish_reason: str | None
    connection_retries: int = 0  # sent again after a stale keep-alive connection (loadgen/client.py)
    # Open loop: when the request was due, seconds after its level started, and how late it went out
    # (the load generator's own send-time error); null in a closed loop, where nothing is scheduled.
    scheduled_s: float | None = None
    send_lag_ms: float | None = None
    # What was asked (quantbench.loadgen.level_stats compares it with the server's usage report), and
    # a synthetic workload's or trace's shared-prefix group and conversation turn (null otherwise).
    input_tokens_requested: int | None = None
    input_tokens_usage: int | None = None
    output_tokens_requested: int | None = None
    prefix_group: int | None = None
    conversation: str | None = None
    turn: int | None = None
    # In flight when its level stopped early (over-saturated) and cancelled by the client: not ok,
    # but not failed by the server either (quantbench.loadgen.load.Stopping).
    cancelled: bool = False

    @property
    def tpot_ms(self) -> float | None:
        """(E2E - TTFT) / (output tokens - 1): the decode time per token after the first."""
        if self.ttft_ms is None or self.e2e_ms is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def itl_ms(self) -> list[float]:
        """Gaps between consecutive chunks (a chunk may carry several tokens; vLLM counts it the same way)."""
        return [later - earlier for earlier, later in zip(self.chunk_ms, self.chunk_ms[1:])]

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "tpot_ms": self.tpot_ms, "itl_ms": self.itl_ms}


def level_records(
    run: LevelRun,
    prompts_by_id: dict[str, Prompt],
    max_tokens: int,
    count_output_tokens: Callable[[str], int],
    count_input_tokens: Callable[[Prompt], int] | None = None,
) -> list[RequestRecord]:
    """`count_input_tokens` counts a conversation turn's input with its history (None: not counted)."""
    from dataclasses import replace

    records = []
    for position, exchange in enumerate(run.exchanges):
        sent = exchange.sent_at
        usage = exchange.usage or {}
        prompt = prompts_by_id.get(exchange.prompt_id)
        asked = (prompt.max_tokens if prompt is not None else None) or max_tokens
        generated, tokens_from = output_tokens(usage, exchange.finish_reason, asked, exchange.text, count_output_tokens)
        requested = None if prompt is None else prompt.input_tokens
        if prompt is not None and exchange.history:  # a later turn: its history is part of its input
            with_history = replace(prompt, history=exchange.history)
            requested = None if count_input_tokens is None else count_input_tokens(with_history)
        # A request that failed before any text arrived has no timings, but still counts.
        ttft_ms = (exchange.arrivals[0] - sent) * 1e3 if exchange.arrivals else None
        e2e_ms = (
            (exchange.finished_at - sent) * 1e3 if exchange.finished_at is not None and not exchange.error else None
        )
        records.append(
            RequestRecord(
                level=run.level.index,
                concurrency=run.level.concurrency,
                request_rate=run.level.request_rate,
                request=position,
                prompt_id=exchange.prompt_id,
                ok=exchange.error is None,
                error=exchange.error,
                status_code=exchange.status_code,
                sent_s=sent - run.started_at,
                ttft_ms=ttft_ms,
                e2e_ms=e2e_ms,
                chunk_ms=[(arrival - sent) * 1e3 for arrival in exchange.arrivals],
                input_tokens=usage.get("prompt_tokens") if usage.get("prompt_tokens") is not None else requested,
                output_tokens=generated,
                tokens_from=tokens_from,
                finish_reason=exchange.finish_reason,
                connection_retries=exchange.connection_retries,
                scheduled_s=None if exchange.scheduled_at is None else exchange.scheduled_at - run.started_at,
                send_lag_ms=None if exchange.scheduled_at is None else (sent - exchange.scheduled_at) * 1e3,
                input_tokens_requested=requested,
                input_tokens_usage=None if usage.get("prompt_tokens") is None else int(usage["prompt_tokens"]),
                output_tokens_requested=asked,
                prefix_group=None if prompt is None else prompt.prefix_group,
                conversation=None if prompt is None else prompt.conversation,
                turn=None if prompt is None else prompt.turn,
                cancelled=exchange.cancelled,
            )
        )
    return records


def records_frame(records: list[RequestRecord]):
    import polars as pl

    schema = {
        "level": pl.Int64,
        "concurrency": pl.Int64,
        "request_rate": pl.Float64,
        "request": pl.Int64,
        "prompt_id": pl.Utf8,
        "ok": pl.Boolean,
        "error": pl.Utf8,
        "status_code": pl.Int64,
        "sent_s": pl.Float64,
        "ttft_ms": pl.Float64,
        "e2e_ms": pl.Float64,
        "chunk_ms": pl.List(pl.Float64),
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "tokens_from": pl.Utf8,
        "finish_reason": pl.Utf8,
        "connection_retries": pl.Int64,
        "scheduled_s": pl.Float64,
        "send_lag_ms": pl.Float64,
        "input_tokens_requested": pl.Int64,
        "input_tokens_usage": pl.Int64,
        "output_tokens_requested": pl.Int64,
        "prefix_group": pl.Int64,
        "conversation": pl.Utf8,
        "turn": pl.Int64,
        "cancelled": pl.Boolean,
        "tpot_ms": pl.Float64,
        "itl_ms": pl.List(pl.Float64),
    }
    return pl.DataFrame([record.row() for record in records], schema=schema)
