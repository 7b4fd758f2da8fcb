"""Fixtures of the engine tests: a llama-server build of one's own that only answers --version."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantbench.gguf.tools import TOOLS_ENV


@pytest.fixture
def own_llama_server(tmp_path, monkeypatch) -> Path:
    """A llama-server of one's own (QUANTBENCH_LLAMA_CPP_TOOLS) that only answers --version."""
    bin_dir = tmp_path / "own-build"
    bin_dir.mkdir()
    server = bin_dir / "llama-server"
    server.write_text("#!/bin/sh\necho 'version: 4242 (0c1e570)'\necho 'built with cc for x86_64'\n")
    server.chmod(0o755)
    monkeypatch.setenv(TOOLS_ENV, str(bin_dir))
    return server
