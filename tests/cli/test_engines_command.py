"""`quantbench engines list|install`: what each engine installation says when it is absent, and a bad
engine name, through the console command's own dispatcher."""

from __future__ import annotations

import pytest

from quantbench.cli.engines import INSTALLS, installation
from quantbench.cli.main import main as quantbench


def test_list_names_the_install_command_of_every_engine_an_empty_cache_lacks(tmp_path, capsys):
    assert quantbench(["engines", "list", "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{name}: not installed (run `quantbench engines install {name}`)" for name in sorted(INSTALLS)]
    for name in INSTALLS:  # the command each installation names for itself is the one this command runs
        assert installation(name).command == f"quantbench engines install {name}"


def test_an_engine_without_an_installation_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        quantbench(["engines", "install", "tgi", "--cache-dir", str(tmp_path)])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]  # argparse's quoting of the choices varies by Python version
    assert "argument engine: invalid choice: 'tgi'" in error and "llama.cpp" in error and "vllm" in error
