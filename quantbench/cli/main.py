"""The `quantbench` console command: `quantbench run ...` (the Hydra app) plus tools.

Each subcommand lives in its own module with a `main(argv) -> int`; this file only dispatches,
importing the chosen module alone so that `quantbench list` does not pay for torch.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: (module:function, one-line help)
    "run": ("quantbench.__main__:main_from_cli", "run one benchmark or a sweep (Hydra overrides; -m for multirun)"),
    "list": ("quantbench.cli.listing:main", "registered backends, families and datasets, and whether they work here"),
    "collect": ("quantbench.cli.collect:main", "aggregate a sweep directory into summary.parquet/.csv and print it"),
    "resume": (
        "quantbench.cli.resume:main",
        "run a sweep again into its directory: only jobs without an ok result run",
    ),
    "cache": ("quantbench.cli.cache:main", "list or clear cached models, quantized checkpoints and references"),
    "engines": (
        "quantbench.cli.engines:main",
        "list or install the engines that live outside quantbench's environment (vLLM, llama.cpp's tools)",
    ),
    "report": (
        "quantbench.cli.report:main",
        "report.md/report.html with statistics vs baseline, cost, roofline and figures",
    ),
    "recommend": (
        "quantbench.cli.recommend:main",
        "the Pareto frontier and the best configuration under memory/latency/quality limits",
    ),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: quantbench <command> [args]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"quantbench: unknown command '{name}'; choose one of: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
