"""Keep the terminal readable without hiding real problems.

bitsandbytes logs "MatMul8bitLt: inputs will be cast ... to float16" on every int8 layer call
on CPU: thousands of identical lines a run. `RepeatedWarningFilter` lets the first occurrence of
each warning through and counts the rest; errors always pass. The counts are reported once.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

# Loggers whose warnings repeat per layer call.
NOISY_LOGGERS = ("bitsandbytes",)


class RepeatedWarningFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.suppressed: Counter[str] = Counter()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        template = str(record.msg)  # the format string, so varying arguments count as one warning
        if template not in self._seen:
            self._seen.add(template)
            return True
        self.suppressed[template] += 1
        return False

    def report(self) -> list[str]:
        """One line per warning that was repeated, then forget the counts."""
        lines = [
            f"(the warning '{template[:80]}' repeated {count} more times)"
            for template, count in self.suppressed.items()
        ]
        self.suppressed.clear()
        return lines


_filter = RepeatedWarningFilter()


def quiet_repeated_warnings() -> RepeatedWarningFilter:
    """Filter the noisy loggers and every logger below them that exists now.

    A logger's filters see only records logged on that logger, not those its children propagate
    up (bitsandbytes logs on "bitsandbytes.autograd._functions"), so each one gets the filter;
    call this after the noisy package is imported, when its module loggers exist.
    """
    existing = list(logging.root.manager.loggerDict)
    for prefix in NOISY_LOGGERS:
        for name in [prefix, *(name for name in existing if name.startswith(prefix + "."))]:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)
    return _filter


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not any(f in str(record.msg) for f in self.fragments)


TORCHAO_ENUM_NOTICE = "is an Enum subclass"
_torchao_enum_notice = _DropMessages((TORCHAO_ENUM_NOTICE,))


def quiet_third_party_chatter() -> None:
    """Import-time notices and per-file progress bars that say nothing about the benchmark.
    Call it before torchao is imported (the warm worker does, before its imports).

    - torch says once per import, for each of torchao's enums (KernelPreference,
      ScaleCalculationMode), that they need no register_constant; harmless for inference.
      torch 2.14 logs it on the `torch.utils._pytree` logger; the `warnings` channel is filtered
      too, so a torch release that issues it as a warning stays as quiet.
    - transformers draws a tqdm bar for every shard it loads or writes; our own progress covers it.
    """
    pytree = logging.getLogger("torch.utils._pytree")
    if _torchao_enum_notice not in pytree.filters:  # every job calls this; add the filter once
        pytree.addFilter(_torchao_enum_notice)
    warnings.filterwarnings("ignore", message=f".*{TORCHAO_ENUM_NOTICE}")  # an identical filter is replaced, not added
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def report_repeated_warnings(log: logging.Logger) -> None:
    for line in _filter.report():
        log.info(line)
