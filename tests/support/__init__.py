"""What the tests share that is not a test: plugins and a stand-in server they register or start,
synthetic sweeps, the app run in-process, and the paths below.

`tests/` is on sys.path (pytest puts the directory of the top conftest.py there), so any test
imports `support.<module>`; an isolated job's child process inherits the parent's sys.path, and
a `python -m quantbench` the tests start needs TESTS on its PYTHONPATH to import a plugin here.
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent  # the directory that holds `support`
ROOT = TESTS.parent  # the repository
FIXTURES = TESTS / "fixtures"  # recorded data and plugin YAML the tests read
SHARED_DATA = ROOT.parent / "shared" / "data"  # the data files beside the checkout, as .ci/run has them
STANDIN = Path(__file__).resolve().parent / "serve_standin.py"  # the stand-in server, started as a script
# tiny-llama's KV cache per token in float32: K and V x layers x KV heads x head size x 4 bytes
TINY_LLAMA_KV_BYTES_FP32 = 2 * 2 * 2 * (128 // 4) * 4
# A serving job on tiny-llama against the stand-in, started through engine.command as a real
# engine's executable would be: what every serving sweep of the tests starts from.
STANDIN_SERVE = [
    "scenario=serve",
    "engine=transformers",
    "model=tiny-llama",
    "precision=fp32",
    f"engine.command={sys.executable} {STANDIN}",
    "bench.max_new_tokens=4",
]
