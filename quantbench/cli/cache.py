"""`quantbench cache list|clear`: what the on-disk cache holds, and removing it.

Every subdirectory of the cache is a kind of entry (models: materialised models; quantized: GPTQ,
AWQ and AutoRound checkpoints; reference: reference distributions; ...), each entry one directory. Directories
of builds in progress or interrupted (`.partial-*`, `tmp/`) are shown, and removed only with
`--partial`, since a running job may own them.

    quantbench cache list
    quantbench cache clear --kind quantized --match smollm2
    quantbench cache clear --dry-run
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from quantbench.backends.checkpoint_cache import QUANTIZED_DIR, checkpoint_details
from quantbench.cache import TEMPORARY_PREFIX, size_on_disk_bytes
from quantbench.engines.vllm_env import ENGINES_DIR, env_details
from quantbench.gguf.files import GGUF_DIR
from quantbench.gguf.store import gguf_details
from quantbench.gguf.tools import LLAMA_CPP_DIR, tools_details

SCRATCH_DIR = "tmp"
# The one-line description of an entry, for the kinds built from a recipe with a manifest.
DETAILS = {
    QUANTIZED_DIR: checkpoint_details,
    GGUF_DIR: gguf_details,
    LLAMA_CPP_DIR: tools_details,
    ENGINES_DIR: env_details,
}


@dataclass
class CacheEntry:
    kind: str
    path: Path
    size_bytes: int
    partial: bool

    @property
    def modified(self) -> str:
        return datetime.fromtimestamp(self.path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")

    def details(self) -> str:
        if self.partial:
            return "in progress or interrupted"
        describe = DETAILS.get(self.kind)
        return describe(self.path) if describe else ""


def default_cache_dir() -> Path:
    """The app's own default (QUANTBENCH_CACHE, else ~/.cache/quantbench), read from its schema."""
    from omegaconf import OmegaConf

    from quantbench.config.schema import QuantbenchConfig

    return Path(OmegaConf.structured(QuantbenchConfig).cache_dir).expanduser()


def cache_entries(root: Path) -> list[CacheEntry]:
    entries: list[CacheEntry] = []
    if not root.is_dir():
        return entries
    for kind_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        for path in sorted(item for item in kind_dir.iterdir() if item.is_dir()):
            partial = kind_dir.name == SCRATCH_DIR or path.name.startswith(TEMPORARY_PREFIX)
            entries.append(CacheEntry(kind_dir.name, path, size_on_disk_bytes(path), partial))
    return entries


def select(entries: list[CacheEntry], kind: str, match: str | None, partial: bool) -> list[CacheEntry]:
    chosen = [entry for entry in entries if kind == "all" or entry.kind == kind]
    if match:
        chosen = [entry for entry in chosen if match in entry.path.name]
    return [entry for entry in chosen if partial or not entry.partial]


def human_size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def print_entries(entries: list[CacheEntry], root: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"quantbench cache: {root}", title_justify="left")
    for column in ("kind", "entry", "size", "modified", "details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.kind, entry.path.name, human_size(entry.size_bytes), entry.modified, entry.details())
    console = Console()
    if not console.is_terminal:  # piped: wide rows instead of rich's 80-column folding
        console = Console(width=240)
    console.print(table)
    console.print(f"{len(entries)} entries, {human_size(sum(entry.size_bytes for entry in entries))}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantbench cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("list", "clear"))
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $QUANTBENCH_CACHE or ~/.cache/quantbench"
    )
    parser.add_argument("--kind", default="all", help="models, quantized, reference, ... or all (default)")
    parser.add_argument("--match", default=None, help="only entries whose name contains this text")
    parser.add_argument(
        "--partial", action="store_true", help="include unfinished builds (clear: only when no job runs)"
    )
    parser.add_argument("--dry-run", action="store_true", help="clear: show what would be removed, remove nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    root = (args.cache_dir or default_cache_dir()).expanduser()
    entries = cache_entries(root)
    kinds = sorted({entry.kind for entry in entries})
    if args.kind != "all" and args.kind not in kinds:
        print(
            f"quantbench cache: no '{args.kind}' entries in {root}; kinds there: {', '.join(kinds) or 'none'}",
            file=sys.stderr,
        )
        return 0 if args.action == "clear" else 1
    if args.action == "list":
        print_entries(select(entries, args.kind, args.match, partial=True), root)
        return 0
    chosen = select(entries, args.kind, args.match, args.partial)
    for entry in chosen:
        print(f"{'would remove' if args.dry_run else 'removing'} {entry.path} ({human_size(entry.size_bytes)})")
        if not args.dry_run:
            shutil.rmtree(entry.path, ignore_errors=True)
    freed = human_size(sum(entry.size_bytes for entry in chosen))
    print(f"{len(chosen)} entries, {freed}{' (dry run)' if args.dry_run else ' freed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
