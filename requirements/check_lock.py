"""Fail when this environment is not the one requirements/lock.txt describes: a locked package
installed at another version, or `pip check` finding a broken requirement. Run by .ci/run right
after the install and by the test suite (tests/test_lock.py).

    python requirements/check_lock.py [--installed-only] [path/to/lock.txt]

--installed-only leaves out locked packages that are not installed at all (an environment without
some extras, whose tests skip); CI's full install runs without it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LOCK_FILE = Path(__file__).resolve().parent / "lock.txt"
NO_DEPS_FILE = Path(__file__).resolve().parent / "no-deps.in"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def normalise(name: str) -> str:
    """PEP 503: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    """{normalised name: version} of every `name==version` line."""
    return {normalise(match[1]): match[2] for match in map(PIN.match, text.splitlines()) if match}


def installed_versions() -> dict[str, str]:
    return {
        normalise(dist.metadata["Name"]): dist.version for dist in metadata.distributions() if dist.metadata["Name"]
    }


def disagreements(locked: dict[str, str], installed: dict[str, str], installed_only: bool = False) -> list[str]:
    """One line per locked package installed at another version, or not installed (unless
    `installed_only`)."""
    problems = []
    for name, version in sorted(locked.items()):
        have = installed.get(name)
        if have is None:
            if not installed_only:
                problems.append(f"{name}: locked at {version}, not installed")
        elif have != version:
            problems.append(f"{name}: locked at {version}, installed {have}")
    return problems


def no_deps_packages(text: str) -> set[str]:
    """The packages installed with --no-deps on purpose: their missing requirements are expected."""
    return {normalise(line.split("#")[0].strip()) for line in text.splitlines() if line.split("#")[0].strip()}


def pip_check_problems(output: str, expected_missing: set[str]) -> list[str]:
    """`pip check`'s complaints, less those about a package installed with --no-deps."""
    return [
        line
        for line in output.splitlines()
        if line.strip() and "No broken requirements" not in line and normalise(line.split()[0]) not in expected_missing
    ]


def main(argv: list[str]) -> int:
    installed_only = "--installed-only" in argv
    paths = [arg for arg in argv if arg != "--installed-only"]
    lock = Path(paths[0]) if paths else LOCK_FILE
    problems = disagreements(read_lock(lock.read_text()), installed_versions(), installed_only)
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems += [
        f"pip check: {line}" for line in pip_check_problems(check.stdout, no_deps_packages(NO_DEPS_FILE.read_text()))
    ]
    for line in problems:
        print(f"check_lock: {line}", file=sys.stderr)
    if problems:
        print(
            f"check_lock: this environment disagrees with {lock} (install with `pip install -c {lock} ...`, "
            "or refresh the lock with requirements/refresh.sh)",
            file=sys.stderr,
        )
        return 1
    print(f"check_lock: {len(read_lock(lock.read_text()))} locked packages installed as locked; pip check clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
