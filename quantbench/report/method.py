"""The report's closing section: how its numbers were computed, with this sweep's settings (the
baseline, confidence, resamples, alpha, the quality gate)."""

from __future__ import annotations

from quantbench.analysis.analyze import Analysis
from quantbench.report.document import Bullets
from quantbench.report.energy import ENERGY_METHOD
from quantbench.report.serving import SERVING_METHOD


def method_bullets(analysis: Analysis) -> Bullets:
    settings = analysis.settings
    level = round(settings.confidence * 100)
    return Bullets(
        (
            "Throughput of a configuration = total work / total time of its timed iterations (after warm-up); "
            "tokens/s counts generated tokens only, QPS counts samples. Latency percentiles are over per-iteration "
            "latency of one generate() call over the whole batch.",
            f"Ratios are against `{settings.baseline}` at the same batch size. {level}% intervals: bootstrap (BCa, "
            f"{settings.bootstrap_resamples} resamples, seed {settings.seed}) over iterations, each configuration "
            "resampled independently. "
            "p: Welch's t-test on log per-iteration throughput, two-sided.",
            f"Direction says faster/slower only where p < {settings.alpha}. Across batch sizes: geometric mean of the "
            "per-batch ratios, interval from a joint bootstrap over all batches, p from the same Welch test applied to "
            "the mean of the per-batch log differences (Welch-Satterthwaite degrees of freedom): a test of the "
            "geometric mean itself, in which faster at one batch and slower at another cancel.",
            "Cost assumes the machine is busy back to back at the measured throughput: $ per 1k tokens = price per "
            "hour / 3600 / tokens/s × 1000; savings compare $ per 1k tokens with the baseline at the same batch size.",
            "Roofline: one decode step reads the stored weights once plus batch × KV bytes per token × average "
            "context (prompt + half the generated tokens); ceiling = batch × bandwidth / bytes per step; measured = "
            "batch / TPOT. "
            "KV bytes per token, bandwidth and price are what each job recorded on the machine that ran it.",
            "Across machines: each configuration against the same configuration (model, precision, batch size, "
            "dataset, generation length, engine) on the baseline hardware; same intervals and tests as across "
            "precisions.",
            "GB = 10^9 bytes. Peak memory is allocated accelerator memory on a GPU, peak resident host memory on a "
            "CPU.",
            *(
                (
                    "Quality gate: a configuration passes when its quality recovery (PubMedQA accuracy / the "
                    f"baseline's where measured, else PPL_baseline / PPL; here `{analysis.gate.metric}`) is at least "
                    f"{analysis.gate.fraction:g}; without the metric it has no verdict (docs/metrics.md).",
                )
                if analysis.gate is not None and analysis.gate.metric is not None
                else ()
            ),
            *((SERVING_METHOD,) if analysis.serving is not None else ()),
            ENERGY_METHOD,
        )
    )
