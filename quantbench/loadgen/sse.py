"""Server-sent events, decoded per the WHATWG spec (the format OpenAI-compatible servers stream).

Lines arrive already split (the client splits the body on LF and drops a CR before it). A line starting with
`:` is a comment; `field: value` sets a field (one leading space after the colon is dropped);
`data` fields of one event are joined with newlines; a blank line dispatches the event. OpenAI
streams end with `data: [DONE]`, which some servers (transformers serve) do not send; the end of
the response body ends the stream either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

DONE = "[DONE]"


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None

    @property
    def is_done(self) -> bool:
        return self.data == DONE


class EventDecoder:
    """Feed lines with `line()`: it returns the event a blank line completes, else None."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def line(self, text: str) -> Event | None:
        if text.startswith("data: "):  # the common case first: a load generator decodes thousands a second
            self._data.append(text[6:])
            return None
        if text == "":
            return self._dispatch()
        if text.startswith(":"):
            return None  # a comment (servers send these as keep-alives)
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # `retry` and unknown fields are ignored, as the spec says
        return None

    def flush(self) -> Event | None:
        """At the end of the body: the spec drops an event without its blank line, but a server
        that closes right after its last `data:` line (no trailing blank line) meant it."""
        return self._dispatch()

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = Event(data="\n".join(self._data), event=self._event or "message", id=self._id)
        self._data, self._event = [], ""
        return event


def decode_lines(lines: Iterable[str]) -> Iterator[Event]:
    """Every event of a whole transcript (tests, recorded streams)."""
    decoder = EventDecoder()
    for text in lines:
        event = decoder.line(text)
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
