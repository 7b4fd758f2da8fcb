"""Collect a sweep: every job directory's `result.json` read into one polars frame (`jobs.parquet`),
repeats folded into one row per configuration (`summary.parquet`/`.csv`), the summary table.
"""
