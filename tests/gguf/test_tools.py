"""llama.cpp's tools in quantbench's cache (quantbench/gguf/tools.py): where they are found, the
install (cmake + ninja, atomic, a manifest, `quantbench cache list`), run for real on a small
stand-in llama.cpp tree that builds in seconds; the real llama.cpp build is `quantbench engines
install llama.cpp` (.ci/run) and its server is tested in tests/e2e/test_llama_server.py."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
from support import ROOT

from quantbench.cache import MANIFEST_FILE, TEMPORARY_PREFIX
from quantbench.gguf.binding import PACKAGE, PINNED_VERSION
from quantbench.gguf.sdist import SOURCE_ENV, changelog_commit
from quantbench.gguf.tools import (
    INSTALL_COMMAND,
    LLAMA_CPP_TOOLS,
    PORTABLE_CPU_FLAGS,
    TOOLS,
    TOOLS_ENV,
    ToolsUnavailable,
    tool_path,
    tools_entry,
)

needs_cmake = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ninja") is None, reason="cmake and ninja are not installed"
)

# A llama.cpp tree in miniature: one C program built under each tool's name, which answers
# --version with the commit cmake was given, as llama.cpp's build-info does.
STAND_IN_CMAKE = """cmake_minimum_required(VERSION 3.14)
project(stand_in_llama_cpp C)
set(LLAMA_BUILD_COMMIT "unknown" CACHE STRING "")
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
foreach(tool llama-server llama-bench llama-perplexity llama-imatrix llama-quantize)
  add_executable(${tool} tool.c)
  target_compile_definitions(${tool} PRIVATE COMMIT="${LLAMA_BUILD_COMMIT}")
endforeach()
"""
STAND_IN_TOOL = """#include <stdio.h>
int main(void) { printf("version: 1 (%s)\\nbuilt with a stand-in\\n", COMMIT); return 0; }
"""
CHANGELOG = f"""# Changelog

## [Unreleased]

## [{PINNED_VERSION}]

- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098

## [0.3.1]

- feat: update llama.cpp to ggml-org/llama.cpp@1111111
"""


def stand_in_tree(root: Path, cmake: str = STAND_IN_CMAKE) -> Path:
    (root / "tools" / "server").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text(cmake)
    (root / "tool.c").write_text(STAND_IN_TOOL)
    return root


def stand_in_sdist(tmp_path: Path) -> Path:
    """A `.tar.gz` laid out as llama-cpp-python's sdist: `<pkg>-<version>/vendor/llama.cpp/...` and
    the package's CHANGELOG.md, which names the llama.cpp commit."""
    tree = stand_in_tree(tmp_path / "tree")
    archive = tmp_path / f"llama_cpp_python-{PINNED_VERSION}.tar.gz"
    top = f"llama_cpp_python-{PINNED_VERSION}"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=f"{top}/vendor/llama.cpp")
        data = CHANGELOG.encode()
        info = tarfile.TarInfo(f"{top}/CHANGELOG.md")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def executables(directory: Path, names: tuple[str, ...] = TOOLS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.write_text("#!/bin/sh\necho 'version: 7 (abc1234)'\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def test_the_readme_set_up_line_passes_the_portable_flags_the_tools_are_built_with():
    """One owner (PORTABLE_CPU_FLAGS); every copy of the set-up line gives the binding the same flags."""
    for document in ("README.md", "docs/getting-started.md", ".ci/run"):
        text = (ROOT / document).read_text()
        found = re.findall(r'CMAKE_ARGS="([^"]*)"', text)
        assert found, f"{document} has no CMAKE_ARGS"
        assert all(tuple(shlex.split(flags)) == PORTABLE_CPU_FLAGS for flags in found), document


def test_a_missing_build_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv(TOOLS_ENV, raising=False)
    with pytest.raises(ToolsUnavailable, match=re.escape(INSTALL_COMMAND)) as raised:
        tool_path(tmp_path, "llama-server")
    assert "\n" not in str(raised.value)
    # An entry without its manifest (a build that did not finish) is not a build either.
    executables(tools_entry(tmp_path) / "bin")
    with pytest.raises(ToolsUnavailable, match=re.escape(INSTALL_COMMAND)):
        tool_path(tmp_path, "llama-server")
    assert LLAMA_CPP_TOOLS.installed(tmp_path) is None
    with pytest.raises(ValueError, match="llama-bench"):
        tool_path(tmp_path, "llama-cli")


def test_a_build_of_ones_own_is_used_through_the_environment(tmp_path, monkeypatch):
    own = executables(tmp_path / "own" / "bin", names=("llama-server",))
    monkeypatch.setenv(TOOLS_ENV, str(own))
    assert tool_path(tmp_path / "empty-cache", "llama-server") == own / "llama-server"
    with pytest.raises(ToolsUnavailable, match=f"{TOOLS_ENV}.*llama-perplexity|llama-perplexity.*{TOOLS_ENV}"):
        tool_path(tmp_path / "empty-cache", "llama-perplexity")
    monkeypatch.setenv(TOOLS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ToolsUnavailable, match="not a directory"):
        tool_path(tmp_path, "llama-server")


def test_the_changelog_names_the_llama_cpp_commit_of_each_version(tmp_path):
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    assert changelog_commit(changelog, PINNED_VERSION) == "0c1e57098"
    assert changelog_commit(changelog, "0.3.1") == "1111111"
    assert changelog_commit(changelog, "9.9.9") is None
    assert changelog_commit(tmp_path / "absent.md", PINNED_VERSION) is None


@needs_cmake
def test_install_builds_every_tool_once_into_the_cache_with_a_manifest_listed_by_cache_list(
    tmp_path, monkeypatch, capsys
):
    from quantbench.cli.cache import main as cache_main

    monkeypatch.delenv(TOOLS_ENV, raising=False)
    monkeypatch.setenv(SOURCE_ENV, str(stand_in_sdist(tmp_path)))
    cache = tmp_path / "cache"
    entry = LLAMA_CPP_TOOLS.install(cache)
    assert entry == tools_entry(cache) == LLAMA_CPP_TOOLS.installed(cache)
    assert entry.name == f"tools-{PINNED_VERSION}" and entry.parent.name == "llama.cpp"
    assert sorted(path.name for path in (entry / "bin").iterdir()) == sorted(TOOLS)
    assert tool_path(cache, "llama-quantize") == entry / "bin" / "llama-quantize"
    # Only the binaries, the log and the manifest remain: the sources and objects are gone.
    assert sorted(path.name for path in entry.iterdir()) == ["bin", "build.log", MANIFEST_FILE]
    assert not list(entry.parent.glob(f"{TEMPORARY_PREFIX}*"))
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    built = manifest["built"]
    assert manifest["version"] == PINNED_VERSION and manifest["tools"] == list(TOOLS)
    flags = built["cmake_flags"]
    assert [flag for flag in flags if flag in PORTABLE_CPU_FLAGS] == list(PORTABLE_CPU_FLAGS)
    assert {"-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF"} <= set(flags)
    # The CHANGELOG's commit reached the build (the stand-in prints it, as llama-server --version does).
    assert built["llama_cpp_commit"] == "0c1e57098" and "(0c1e57098)" in built["llama_cpp_version"]
    assert built["build_s"] > 0

    # Installed: a second install builds nothing; --force builds again.
    stamp = (entry / MANIFEST_FILE).stat().st_mtime_ns
    assert LLAMA_CPP_TOOLS.install(cache) == entry and (entry / MANIFEST_FILE).stat().st_mtime_ns == stamp
    assert LLAMA_CPP_TOOLS.install(cache, force=True) == entry
    assert (entry / MANIFEST_FILE).stat().st_mtime_ns != stamp

    description = LLAMA_CPP_TOOLS.describe(entry)
    assert PACKAGE in description and PINNED_VERSION in description and "0c1e57098" in description
    assert cache_main(["list", "--cache-dir", str(cache)]) == 0
    listed = capsys.readouterr().out
    assert f"tools-{PINNED_VERSION}" in listed and "llama.cpp tools of" in listed


@needs_cmake
def test_a_failed_build_leaves_no_entry_and_names_its_log(tmp_path, monkeypatch):
    monkeypatch.delenv(TOOLS_ENV, raising=False)
    broken = stand_in_tree(tmp_path / "llama.cpp", STAND_IN_CMAKE.replace("add_executable", "add_executabel"))
    monkeypatch.setenv(SOURCE_ENV, str(broken))
    cache = tmp_path / "cache"
    with pytest.raises(ToolsUnavailable, match=r"configuring llama.cpp's tools failed .*log: ") as raised:
        LLAMA_CPP_TOOLS.install(cache)
    log_file = Path(str(raised.value).rsplit("log: ", 1)[1].rstrip(")"))
    assert "add_executabel" in log_file.read_text()
    assert LLAMA_CPP_TOOLS.installed(cache) is None
    assert not tools_entry(cache).exists() and not list((cache / "llama.cpp").glob(f"{TEMPORARY_PREFIX}*"))


def test_a_source_without_llama_cpp_is_refused_before_building(tmp_path, monkeypatch):
    (tmp_path / "not-llama").mkdir()
    monkeypatch.setenv(SOURCE_ENV, str(tmp_path / "not-llama"))
    with pytest.raises(ToolsUnavailable, match=f"holds no llama.cpp tree.*{SOURCE_ENV}"):
        LLAMA_CPP_TOOLS.install(tmp_path / "cache")
    assert LLAMA_CPP_TOOLS.installed(tmp_path / "cache") is None
