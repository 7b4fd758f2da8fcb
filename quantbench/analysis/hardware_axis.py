"""The hardware side of an analysed sweep: the facts each job recorded, and the hardware axis.

Price, bandwidth, peak compute and where each came from are resolved by the job on the machine
that ran it (quantbench/measure/hardware_facts.py) and arrive here as summary columns; nothing is looked
up or measured again. A job written by an older quantbench may lack some of them: its rows say so.

The hardware axis names each machine of a comparison: the hardware config's name, with the device
name where one hardware name covers several devices (two sweeps on two machines, both
`hardware=auto`).
"""

from __future__ import annotations

import polars as pl

# Column -> its type; a source column explains the value column before it.
FACT_COLUMNS = {
    "price_per_hour_usd": pl.Float64,
    "price_source": pl.Utf8,
    "memory_bandwidth_gb_s": pl.Float64,
    "bandwidth_source": pl.Utf8,
    "peak_fp16_tflops": pl.Float64,
    "peak_compute_source": pl.Utf8,
}
SOURCE_OF = {
    "price_per_hour_usd": "price_source",
    "memory_bandwidth_gb_s": "bandwidth_source",
    "peak_fp16_tflops": "peak_compute_source",
}
HARDWARE_AXIS = "hardware_axis"


def with_hardware_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every fact column (null where the jobs did not record it) and a source for each
    value, and the hardware axis column."""
    frame = frame.with_columns(
        pl.lit(None, dtype=kind).alias(column) for column, kind in FACT_COLUMNS.items() if column not in frame.columns
    )
    frame = frame.with_columns(
        pl.when(pl.col(source).is_not_null())
        .then(pl.col(source))
        .when(pl.col(value).is_not_null())
        .then(pl.lit("recorded without its source (an older quantbench)"))
        .otherwise(pl.lit(f"not recorded by the job; set hardware.{value} and run it again"))
        .alias(source)
        for value, source in SOURCE_OF.items()
    )
    return frame.with_columns(hardware_axis(frame).alias(HARDWARE_AXIS))


def hardware_axis(frame: pl.DataFrame) -> pl.Series:
    """Each row's machine: its hardware name, and its device where that name covers several."""
    if frame.height == 0 or "hardware" not in frame.columns:
        return pl.Series(HARDWARE_AXIS, [None] * frame.height, dtype=pl.Utf8)
    device = pl.col("device") if "device" in frame.columns else pl.lit(None, dtype=pl.Utf8)
    devices_per_name = frame.group_by("hardware").agg(device.n_unique().alias("_devices"))
    counts = dict(devices_per_name.iter_rows())
    return pl.Series(
        HARDWARE_AXIS,
        [
            f"{row['hardware']} ({row.get('device')})" if counts.get(row["hardware"], 1) > 1 else str(row["hardware"])
            for row in frame.iter_rows(named=True)
        ],
        dtype=pl.Utf8,
    )


def choose_baseline_hardware(
    table: pl.DataFrame, first_rows: pl.DataFrame, requested: str | None
) -> tuple[str | None, list[str]]:
    """(the hardware every other is compared with, notes). `requested` may be a hardware axis
    value, a hardware name or a device name; None (or one that matches nothing) takes the hardware
    of the first sweep directory's first ok job."""
    axes = table.get_column(HARDWARE_AXIS).unique(maintain_order=True).to_list() if table.height else []
    default = (first_rows if first_rows.height else table).get_column(HARDWARE_AXIS)[0] if axes else None
    if requested is None or not axes:
        return default, []
    names = ("hardware", "device", HARDWARE_AXIS)
    matching = (
        table.filter(
            pl.any_horizontal(pl.col(name).cast(pl.Utf8) == requested for name in names if name in table.columns)
        )
        .get_column(HARDWARE_AXIS)
        .unique(maintain_order=True)
        .to_list()
    )
    if len(matching) == 1:
        return matching[0], []
    if not matching:
        return default, [
            f"baseline hardware '{requested}' has no ok result; comparing against '{default}' "
            f"(the first sweep's) instead; choose one of: {', '.join(axes)}"
        ]
    return matching[0], [
        f"baseline hardware '{requested}' names several machines ({', '.join(matching)}); "
        f"comparing against '{matching[0]}'; name one exactly"
    ]
