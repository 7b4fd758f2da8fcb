"""What a configuration costs: a price per hour turned into cost per token, per query, per dollar.

All of it assumes the machine is busy with back-to-back batches at the measured throughput, which
is the best case a deployment can reach: idle time only makes every number here worse.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

# A float, or a polars expression: the same arithmetic serves one number and a whole column.
Number = TypeVar("Number", float, pl.Expr)

SECONDS_PER_HOUR = 3600.0


def cost_per_1k_tokens(price_per_hour_usd: Number, tokens_per_s: Number) -> Number:
    """USD per 1000 generated tokens."""
    return price_per_hour_usd / SECONDS_PER_HOUR / tokens_per_s * 1000.0


def cost_per_query(price_per_hour_usd: Number, qps: Number) -> Number:
    """USD per answered query (one sample of a batch)."""
    return price_per_hour_usd / SECONDS_PER_HOUR / qps


def queries_per_dollar(price_per_hour_usd: Number, qps: Number) -> Number:
    return qps * SECONDS_PER_HOUR / price_per_hour_usd


def savings_pct(cost: Number, baseline_cost: Number) -> Number:
    """How much cheaper than the baseline, in percent (negative: dearer)."""
    return (1.0 - cost / baseline_cost) * 100.0


def with_cost_columns(frame: pl.DataFrame, baseline: str, group_columns: list[str]) -> pl.DataFrame:
    """Add cost_per_1k_tokens_usd, cost_per_query_usd, queries_per_dollar and savings_vs_baseline_pct.

    The scalar functions above are plain arithmetic, so they build polars expressions as well.
    Savings compare the cost per 1k tokens with the baseline precision's at the same batch size and
    in the same group; a row without a price (or a baseline) gets nulls, never a made-up number.
    """
    price, qps = pl.col("price_per_hour_usd"), pl.col("qps")
    frame = frame.with_columns(
        cost_per_1k_tokens(price, pl.col("tokens_per_s")).alias("cost_per_1k_tokens_usd"),
        cost_per_query(price, qps).alias("cost_per_query_usd"),
        queries_per_dollar(price, qps).alias("queries_per_dollar"),
    )
    keys = [*group_columns, "batch"]
    baseline_cost = (
        frame.filter(pl.col("precision") == baseline)
        .group_by(keys)
        .agg(pl.col("cost_per_1k_tokens_usd").first().alias("_baseline_cost"))
    )
    frame = frame.join(baseline_cost, on=keys, how="left", nulls_equal=True)
    savings = savings_pct(pl.col("cost_per_1k_tokens_usd"), pl.col("_baseline_cost"))
    return frame.with_columns(savings.alias("savings_vs_baseline_pct")).drop("_baseline_cost")
