"""`quantbench engines list|install`: the engines that run outside quantbench's own environment.

vLLM lives in its own virtual environment (its torch is not quantbench's) and llama.cpp's server and
tools are built from the pinned llama-cpp-python's sources; both are made once per version into
quantbench's cache, where `engine=vllm` and `engine=llama.cpp` find them.

    quantbench engines list
    quantbench engines install llama.cpp
    quantbench engines install vllm
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

# name: "module:object" of its installation (imported only when chosen: each pulls its own room in).
INSTALLS = {
    "llama.cpp": "quantbench.gguf.tools:LLAMA_CPP_TOOLS",
    "vllm": "quantbench.engines.vllm_env:VLLM_INSTALL",
}


def installation(name: str) -> Any:
    module_name, attribute = INSTALLS[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def parser() -> argparse.ArgumentParser:
    from quantbench.cli.cache import default_cache_dir

    root = argparse.ArgumentParser(prog="quantbench engines", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    for name, text in (("list", "what is installed, and where"), ("install", "make an engine's installation")):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--cache-dir",
            type=Path,
            default=default_cache_dir(),
            help="quantbench's cache (default: QUANTBENCH_CACHE, else ~/.cache/quantbench)",
        )
        if name == "install":
            command.add_argument("engine", choices=sorted(INSTALLS), help="the engine to install")
            command.add_argument("--force", action="store_true", help="make it again even if it is installed")
    return root


def main(argv: list[str] | None = None) -> int:
    from quantbench.errors import QuantbenchError

    arguments = parser().parse_args(argv)
    cache_dir = arguments.cache_dir.expanduser()
    if arguments.command == "list":
        for name in sorted(INSTALLS):
            install = installation(name)
            entry = install.installed(cache_dir)
            state = install.describe(entry) if entry else f"not installed (run `{install.command}`)"
            print(f"{name}: {state}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    install = installation(arguments.engine)
    try:
        entry = install.install(cache_dir, force=arguments.force)
    except QuantbenchError as error:
        print(f"quantbench engines install {arguments.engine}: {error}", file=sys.stderr)
        return 1
    print(f"{arguments.engine}: {install.describe(entry)}")
    return 0
