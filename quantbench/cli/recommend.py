"""`quantbench recommend DIR [DIR ...]`: which configuration to deploy under memory, latency and quality limits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantbench.analysis.frontier import Limits
from quantbench.errors import QuantbenchError
from quantbench.report.recommend import OBJECTIVES, SWEEP_GATE, recommend, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench recommend", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dirs",
        type=Path,
        nargs="+",
        metavar="sweep_dir",
        help="a sweep directory (e.g. multirun/2026-11-22/12-00-00); several are judged as one set",
    )
    parser.add_argument("--max-memory-gb", type=float, help="upper limit on peak memory (GB = 1e9 bytes)")
    parser.add_argument("--max-p95-ms", type=float, help="upper limit on p95 latency per batch (ms)")
    parser.add_argument(
        "--max-quality-drop",
        type=float,
        help="upper limit on quality loss vs the baseline: accuracy in percentage points, "
        "KL divergence in nats, perplexity in %% increase (see --quality-metric)",
    )
    parser.add_argument("--batch", type=int, help="only this batch size")
    parser.add_argument(
        "--quality-gate",
        type=float,
        nargs="?",
        const=SWEEP_GATE,
        metavar="FRACTION",
        help="only configurations that keep this fraction of the baseline's quality (PubMedQA accuracy, "
        "else PPL_baseline / PPL); without FRACTION the sweep's analysis.quality_gate (0.99, MLPerf's)",
    )
    parser.add_argument("--objective", choices=sorted(OBJECTIVES), default="tokens_per_s", help="what 'best' maximises")
    parser.add_argument(
        "--memory-column", help="peak_memory_gb (default) or weight_memory_gb (the default for serving)"
    )
    parser.add_argument(
        "--quality-metric", help="quality column (default: pubmedqa_acc, else kld_mean, else ppl, else top1_agree)"
    )
    parser.add_argument(
        "--baseline", help="the precision quality drop is measured against (default: the sweep's, fp32)"
    )
    serving = parser.add_argument_group(
        "serving (scenario=serve rows; any of these judges the load levels instead of offline batches)"
    )
    serving.add_argument(
        "--users", type=float, help="the level with this many concurrent users (interpolated between measured levels)"
    )
    serving.add_argument(
        "--max-e2e-p95-ms", type=float, help="upper limit on the p95 end-to-end latency of a request (ms)"
    )
    serving.add_argument("--max-ttft-p95-ms", type=float, help="upper limit on the p95 time to first token (ms)")
    serving.add_argument("--min-goodput", type=float, help="lower limit on goodput: requests/s meeting serve.slo")
    serving.add_argument(
        "--min-top1-agreement",
        type=float,
        metavar="PERCENT",
        help="lower limit on the served model's top-1 agreement with the reference, in percent (serve.fidelity: "
        "the level's own under load, else the job's at no load)",
    )
    serving.add_argument(
        "--max-served-kld",
        type=float,
        metavar="NATS",
        help="upper limit on the served model's KL divergence from the reference (serve.fidelity's estimate)",
    )
    serving.add_argument(
        "--min-quality-goodput",
        type=float,
        help="lower limit on quality-adjusted goodput: requests/s of levels whose served fidelity meets "
        "serve.fidelity_min_top1 / serve.fidelity_max_kld",
    )
    args = parser.parse_args(argv)
    from quantbench.analysis.analyze import analyze
    from quantbench.analysis.sweep import recorded_settings
    from quantbench.loadgen.quality_goodput import top1_limit_problem
    from quantbench.report.recommend_serving import (
        DEFAULT_MEMORY_COLUMN,
        ServingLimits,
        recommend_serving,
        render_serving,
    )

    problem = top1_limit_problem(args.min_top1_agreement, "--min-top1-agreement")
    if problem:
        print(f"quantbench recommend: {problem}", file=sys.stderr)
        return 2
    serving_limits = ServingLimits(
        args.users,
        args.max_e2e_p95_ms,
        args.max_ttft_p95_ms,
        args.min_goodput,
        args.min_top1_agreement,
        args.max_served_kld,
        args.min_quality_goodput,
    )
    try:
        settings = recorded_settings(args.sweep_dirs[0], baseline=args.baseline)
        gate = settings.quality_gate if args.quality_gate is SWEEP_GATE else args.quality_gate
        limits = Limits(args.max_memory_gb, args.max_p95_ms, args.max_quality_drop, args.batch, gate)
        analysis = analyze(args.sweep_dirs, settings, comparisons=False)
        if serving_limits.given() or (analysis.table.height == 0 and analysis.serving is not None):
            recommendation = recommend_serving(
                analysis, serving_limits, limits, args.memory_column or DEFAULT_MEMORY_COLUMN, args.quality_metric
            )
            if limits.quality_gate is not None:
                recommendation.notes.append(
                    "--quality-gate judges offline configurations only; it was not applied to the load levels"
                )
            text = render_serving(recommendation, serving_limits, limits)
        else:
            recommendation = recommend(
                analysis, limits, args.objective, args.memory_column or "peak_memory_gb", args.quality_metric
            )
            if analysis.serving is not None:
                recommendation.notes.append(
                    "this sweep also has serving rows: judge them with --users, --max-e2e-p95-ms, "
                    "--max-ttft-p95-ms, --min-goodput or --min-top1-agreement"
                )
            text = render(recommendation, limits)
    except QuantbenchError as error:
        print(f"quantbench recommend: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0 if recommendation.best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
