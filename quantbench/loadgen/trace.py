"""serve.trace=FILE: replay a trace of requests with their timing, as one open-loop level ("trace").

The file is JSON Lines, one request a line, in order of arrival (docs/serving.md#trace-replay):

    {"arrival_s": 0.0, "input_tokens": 512, "output_tokens": 64}
    {"arrival_s": 0.31, "input_tokens": 90, "output_tokens": 12, "prefix_group": 2, "prefix_tokens": 64}
    {"arrival_s": 0.35, "input_tokens": 40, "output_tokens": 30, "conversation_id": "c7"}

arrival_s: seconds from the trace's start (not decreasing from line to line); input_tokens: the
request's whole input as the server counts it; output_tokens: what it asks for. Optional:
prefix_group (requests of a group share a system prompt of prefix_tokens tokens, given on each of
its lines) and conversation_id (the group's lines are the turns of one conversation, in order: a
turn is sent at its arrival_s, or when the turn before it has ended if that is later). Other keys
are ignored. Blank lines are skipped. A line that breaks these rules is a one-line error naming the
file and the line.

Prompts are cut from the dataset's text by the same builder as dataset=synthetic
(quantbench.loadgen.synthetic); `serve.trace_speed` scales time (2: twice as fast).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantbench.errors import DatasetError, JobSkipped

if TYPE_CHECKING:
    from quantbench.data.base import Sample
    from quantbench.loadgen.load import Arrival
    from quantbench.loadgen.synthetic import RequestShape

REQUIRED = ("arrival_s", "input_tokens", "output_tokens")
_SEED_SALT = 0x7ACE


class TraceError(DatasetError):
    """A trace file that cannot be replayed: the message names the file and the line."""


@dataclass(frozen=True)
class TraceRequest:
    line: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix_group: int | None = None
    prefix_tokens: int = 0
    conversation: str | None = None


def _count(entry: dict[str, Any], key: str, where: str, low: int) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TraceError(f"{where}: {key} must be a whole number of at least {low}, got {value!r}")
    return value


def _request(entry: Any, number: int, where: str, previous_s: float) -> TraceRequest:
    if not isinstance(entry, dict):
        raise TraceError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise TraceError(f"{where}: missing {', '.join(missing)} (every line needs {', '.join(REQUIRED)})")
    arrival = entry["arrival_s"]
    if isinstance(arrival, bool) or not isinstance(arrival, (int, float)) or not math.isfinite(arrival):
        raise TraceError(f"{where}: arrival_s must be a number of seconds, got {arrival!r}")
    if arrival < 0:
        raise TraceError(f"{where}: arrival_s={arrival:g} is negative; times count from the trace's start")
    if arrival < previous_s:
        raise TraceError(
            f"{where}: arrival_s={arrival:g} is before the line above ({previous_s:g}); sort the trace by arrival_s"
        )
    group = entry.get("prefix_group")
    if group is not None:
        group = _count(entry, "prefix_group", where, 0)
        if "prefix_tokens" not in entry:
            raise TraceError(f"{where}: prefix_group needs prefix_tokens (the shared system prompt's length)")
    conversation = entry.get("conversation_id")
    return TraceRequest(
        line=number,
        arrival_s=float(arrival),
        input_tokens=_count(entry, "input_tokens", where, 1),
        output_tokens=_count(entry, "output_tokens", where, 1),
        prefix_group=group,
        prefix_tokens=_count(entry, "prefix_tokens", where, 1) if group is not None else 0,
        conversation=None if conversation is None else str(conversation),
    )


def read_trace(path: str | Path) -> list[TraceRequest]:
    """The trace's requests; TraceError naming the file and line of the first malformed one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TraceError(f"serve.trace: no file at {path}; give a JSON Lines trace (docs/serving.md#trace-replay)")
    requests: list[TraceRequest] = []
    lengths: dict[int, tuple[int, int]] = {}  # prefix group -> (its length, the line that set it)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise TraceError(f"{where}: not valid JSON ({error.msg}); expected one object a line") from None
            request = _request(entry, number, where, requests[-1].arrival_s if requests else 0.0)
            if request.prefix_group is not None:
                length, first = lengths.setdefault(request.prefix_group, (request.prefix_tokens, number))
                if length != request.prefix_tokens:
                    raise TraceError(
                        f"{where}: prefix_group {request.prefix_group} has prefix_tokens={request.prefix_tokens}, "
                        f"but {length} on line {first}; a group shares one prefix"
                    )
            requests.append(request)
    if not requests:
        raise TraceError(f"serve.trace: {path} holds no requests; expected one JSON object a line")
    return requests


def check_speed(speed: Any) -> float:
    if speed is None or float(speed) <= 0:
        raise JobSkipped(f"serve.trace_speed must be a positive time scale (1: as recorded), got {speed}")
    return float(speed)


def trace_shapes(
    requests: Sequence[TraceRequest], samples: Sequence[Sample], seed: int, context_tokens: int | None, path: str
) -> list[RequestShape]:
    """What to cut for each line: passages of the dataset's text, seeded; JobSkipped for a line
    longer than the model's context."""
    import numpy as np

    from quantbench.data.synthetic import passages
    from quantbench.loadgen.synthetic import RequestShape

    corpus = "\n".join(sample.text for sample in samples)
    if not corpus.strip():
        raise JobSkipped("serve.trace: the dataset has no text to cut the trace's prompts from")
    for request in requests:
        if context_tokens is not None and request.input_tokens + request.output_tokens > context_tokens:
            raise JobSkipped(
                f"serve.trace {path}, line {request.line}: {request.input_tokens} input + {request.output_tokens} "
                f"output tokens do not fit the model's context of {context_tokens}"
            )
    rng = np.random.default_rng([seed, _SEED_SALT])
    groups = sorted({r.prefix_group for r in requests if r.prefix_group is not None})
    lengths = {r.prefix_group: r.prefix_tokens for r in requests if r.prefix_group is not None}
    prefix_passages = dict(zip(groups, passages(corpus, rng, [lengths[group] for group in groups])))
    texts = passages(corpus, rng, [request.input_tokens for request in requests])
    turns: dict[str, int] = {}
    shapes = []
    for request, text in zip(requests, texts):
        turn = None
        if request.conversation is not None:
            turn = turns[request.conversation] = turns.get(request.conversation, -1) + 1
        shapes.append(
            RequestShape(
                id=f"trace-line{request.line}",
                passage=text,
                input_tokens=request.input_tokens,
                output_tokens=request.output_tokens,
                prefix_group=request.prefix_group,
                prefix_tokens=request.prefix_tokens,
                prefix_passage=prefix_passages.get(request.prefix_group),
                conversation=request.conversation,
                turn=turn,
            )
        )
    return shapes


def schedule(requests: Sequence[TraceRequest], prompts: Sequence[Any], speed: float) -> tuple[Arrival, ...]:
    """The arrivals of the trace: each prompt (a conversation: its first turn) at its arrival_s / speed,
    a conversation's later turns at theirs. `prompts` are the cut prompts, conversations grouped, in
    the order of their first line."""
    from quantbench.loadgen.load import Arrival

    by_line = {request.line: request for request in requests}
    arrivals = []
    for prompt in prompts:
        times = [by_line[_line_of(turn.id)].arrival_s / speed for turn in (prompt, *prompt.turns)]
        arrivals.append(Arrival(times[0], prompt, tuple(times[1:])))
    return tuple(arrivals)


def _line_of(prompt_id: str) -> int:
    return int(prompt_id.removeprefix("trace-line"))
