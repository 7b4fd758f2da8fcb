"""A captured stream that plays a terminal, or a log file, for progress output."""

import io


class Stream(io.StringIO):
    """A captured stream that says whether it is a terminal."""

    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal
