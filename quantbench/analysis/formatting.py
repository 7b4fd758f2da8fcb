"""How numbers are written in the report, the findings and `recommend`: one place, one style."""

from __future__ import annotations

import math
from typing import Any


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_number(value: Any, digits: int = 3) -> str:
    """Significant digits, thousands separators for large values, '–' for missing."""
    if _missing(value):
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_fixed(value: Any, decimals: int = 2, suffix: str = "") -> str:
    return "–" if _missing(value) else f"{value:,.{decimals}f}{suffix}"


def fmt_ratio(value: Any) -> str:
    return "–" if _missing(value) else f"{value:.3f}×"


def fmt_interval(low: Any, high: Any) -> str:
    return "–" if _missing(low) or _missing(high) else f"{low:.3f}–{high:.3f}"


def fmt_p(value: Any) -> str:
    if _missing(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def p_phrase(value: Any) -> str:
    """'p < 0.001' or 'p = 0.123', for sentences."""
    text = fmt_p(value)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_usd(value: Any) -> str:
    """Dollars with enough digits for the tiny per-token and per-query amounts."""
    if _missing(value):
        return "–"
    return f"${value:.3g}" if abs(value) < 1 else f"${value:,.2f}"


def fmt_pct(value: Any, decimals: int = 1, signed: bool = False) -> str:
    if _missing(value):
        return "–"
    return f"{value:+.{decimals}f}%" if signed else f"{value:.{decimals}f}%"
