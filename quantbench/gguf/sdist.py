"""The llama.cpp sources that quantbench uses: the `vendor/llama.cpp/` tree of the pinned
llama-cpp-python source distribution, so the converter (gguf/converter.py) and the programs
(gguf/tools.py) match the library the binding compiled.

They come from QUANTBENCH_LLAMA_CPP_SOURCE (the sdist `.tar.gz`, its extracted directory, or a
llama.cpp checkout, for machines without PyPI) or else from the sdist that `pip download` fetches.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Collection

from quantbench.errors import QuantbenchError
from quantbench.gguf.binding import PACKAGE

log = logging.getLogger("quantbench")

SOURCE_ENV = "QUANTBENCH_LLAMA_CPP_SOURCE"
VENDOR_PREFIX = "vendor/llama.cpp/"
CHANGELOG = "CHANGELOG.md"
# The cache's subdirectory for what is made from these sources: `converter-<version>`, `tools-<version>`.
LLAMA_CPP_DIR = "llama.cpp"


class SourceUnavailable(QuantbenchError):
    """The llama.cpp sources cannot be obtained; the message says how to provide them."""


def configured_source() -> Path | None:
    """QUANTBENCH_LLAMA_CPP_SOURCE, where set."""
    source = os.environ.get(SOURCE_ENV)
    return Path(source).expanduser() if source else None


def source_archive_or_dir(version: str, scratch: Path, purpose: str) -> Path:
    """QUANTBENCH_LLAMA_CPP_SOURCE, else the sdist of `version` downloaded into `scratch`."""
    return configured_source() or download_sdist(version, scratch, purpose)


def download_sdist(version: str, into: Path, purpose: str) -> Path:
    """The llama-cpp-python sdist of `version`, fetched from PyPI with pip into `into`."""
    log.info("fetching %s: the %s %s source distribution from PyPI", purpose, PACKAGE, version)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        PACKAGE,
        f"{PACKAGE}=={version}",
        "--dest",
        str(into),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(into.glob("*.tar.gz"))
    if done.returncode != 0 or not archives:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SourceUnavailable(
            f"cannot fetch {purpose} ({' '.join(command[2:5])}... failed: {last[0]}); download "
            f"{PACKAGE}-{version}.tar.gz yourself and set {SOURCE_ENV} to its path"
        )
    return archives[0]


def llama_cpp_root(directory: Path) -> Path:
    """The llama.cpp tree in a directory source: its `vendor/llama.cpp/` (an extracted sdist) or itself
    (a llama.cpp checkout)."""
    vendored = directory / VENDOR_PREFIX
    return vendored if vendored.is_dir() else directory


def extract_llama_cpp(archive: Path, into: Path, parts: Collection[str] | None = None) -> list[str]:
    """Extract the sdist's `vendor/llama.cpp/` tree into `into` (only its top-level `parts`, where
    given); returns the names extracted, relative to the llama.cpp root. Its CHANGELOG.md (which names
    the llama.cpp commit) is kept too, as `into/CHANGELOG.md`."""
    if not tarfile.is_tarfile(archive):
        raise SourceUnavailable(f"{archive} is neither a llama.cpp directory nor a source archive; check {SOURCE_ENV}")
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            # <package>-<version>/vendor/llama.cpp/<part>/...
            inside = member.name.split("/", 1)[-1]
            if inside.startswith(VENDOR_PREFIX):
                relative = inside[len(VENDOR_PREFIX) :]
                if relative and (parts is None or relative.split("/", 1)[0] in parts):
                    member.name = relative
                    members.append(member)
            elif inside == CHANGELOG and parts is None:
                members.append(member)
                member.name = CHANGELOG
        tar.extractall(into, members=members, filter="data")
    return [member.name for member in members]


def changelog_commit(changelog: Path, version: str) -> str | None:
    """The llama.cpp commit that llama-cpp-python's CHANGELOG names for `version`
    (`- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098`), or None."""
    try:
        text = changelog.read_text(errors="replace")
    except OSError:
        return None
    section = re.search(rf"^## \[{re.escape(version)}\]\s*$(.*?)(?=^## \[|\Z)", text, re.M | re.S)
    if section is None:
        return None
    commit = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section.group(1))
    return commit.group(1) if commit else None
