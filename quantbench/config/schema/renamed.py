"""Config keys renamed since an earlier quantbench: the one table of old dotted keys and their new
names."""

from __future__ import annotations

# Old dotted key -> new dotted key. One table for every use: an old name on the command line is a
# one-line error naming the new one (quantbench.cli.overrides), and a result.json written with the
# old names is read with the new ones, its config hash included (quantbench.jobdir).
RENAMED_KEYS: dict[str, str] = {
    "hardware.price_per_hour": "hardware.price_per_hour_usd",
    "analysis.confidence_level": "analysis.confidence",
    "analysis.min_iterations": "analysis.warn_below_iterations",
}
