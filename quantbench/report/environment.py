"""The report's environment table: where the sweep ran and with what, from the first job's
result.json, one entry per machine where there were several."""

from __future__ import annotations

from typing import Any

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_number, fmt_usd
from quantbench.analysis.hardware_axis import HARDWARE_AXIS
from quantbench.report.document import Table


def environment_table(analysis: Analysis) -> Table:
    result = analysis.sweep.first_result() or {}
    environment = result.get("environment") or {}
    config = result.get("config") or {}
    versions = environment.get("versions") or {}
    bench = config.get("bench") or {}
    model = config.get("model") or {}
    table = analysis.table
    first = table.row(0, named=True) if table.height else {}
    several = len(analysis.machines) > 1
    entries = [
        ("sweep directory", ", ".join(str(directory) for directory in analysis.sweep.directories)),
        ("quantbench versions", _versions(analysis)),
        ("model", f"{model.get('name', first.get('model', '–'))} ({model.get('source', '?')} source)"),
        ("model note", model.get("note") or ""),
        ("dataset", str(first.get("dataset", "–"))),
    ]
    if several:
        entries += [(f"hardware {machine}", _machine(row)) for machine, row in _first_row_per_machine(analysis)]
    else:
        entries += [
            ("hardware config", str(first.get("hardware", "–"))),
            (
                "device",
                f"{environment.get('device_name') or first.get('device', '–')} ({environment.get('device_type', '?')})",
            ),
            ("device memory", f"{environment['device_memory_gb']} GB" if environment.get("device_memory_gb") else ""),
            (
                "CPU",
                f"{environment.get('cpu', '–')}, {environment.get('cpu_count', '?')} logical cores, "
                f"{environment.get('torch_threads', '?')} torch threads",
            ),
            *_facts(first),
        ]
    entries += [
        ("bench", ", ".join(f"{key}={value}" for key, value in bench.items()) if bench else ""),
        ("python", str(environment.get("python", "–"))),
        ("packages", ", ".join(f"{name} {version}" for name, version in versions.items() if version)),
        ("CUDA", "" if several else str(environment.get("cuda") or "none")),
        ("git commit", str(environment.get("git_commit") or "unknown")),
        ("host", "" if several else str(environment.get("hostname") or "")),
    ]
    rows = tuple((key, value) for key, value in entries if value)
    return Table(("", "value"), rows)


def _facts(row: dict[str, Any]) -> list[tuple[str, str]]:
    """Price, bandwidth and peak compute of a machine, each with the source its job recorded."""
    peak = row.get("peak_fp16_tflops")
    return [
        ("price per hour", f"{fmt_usd(row.get('price_per_hour_usd'))} — {row.get('price_source', '')}"),
        (
            "memory bandwidth",
            f"{fmt_number(row.get('memory_bandwidth_gb_s'))} GB/s — {row.get('bandwidth_source', '')}",
        ),
        (
            "peak FP16 compute",
            f"{fmt_number(peak)} TFLOPS — {row.get('peak_compute_source', '')}" if peak is not None else "",
        ),
    ]


def _machine(row: dict[str, Any]) -> str:
    """One machine of several, in one cell: its device, product and facts."""
    product = row.get("hardware_product")
    facts = "; ".join(f"{name} {value}" for name, value in _facts(row) if value)
    return f"{row.get('device', '–')}" + (f" ({product})" if product else "") + f"; {facts}"


def _first_row_per_machine(analysis: Analysis) -> list[tuple[str, dict[str, Any]]]:
    table = analysis.table
    return [
        (machine, table.filter(pl.col(HARDWARE_AXIS) == machine).row(0, named=True)) for machine in analysis.machines
    ]


def _versions(analysis: Analysis) -> str:
    """Which quantbench measured which jobs: one version, or each with the machines it ran on."""
    summary = analysis.sweep.summary
    if "quantbench_version" not in summary.columns:
        return ""
    found: dict[str, list[str]] = {}
    for row in summary.iter_rows(named=True):
        if row.get("quantbench_version") is None and row.get("status") != "ok":
            continue  # an unreadable or unfinished job: the jobs table says why
        version = row.get("quantbench_version") or "unknown (not recorded)"
        where = str(row.get("hardware") or "?")
        if where not in found.setdefault(version, []):
            found[version].append(where)
    if len(found) == 1:
        return next(iter(found))
    return "; ".join(f"{version} ({', '.join(machines)})" for version, machines in found.items())
