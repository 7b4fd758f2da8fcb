#!/usr/bin/env bash
# The GPU check: one command, at most 8 minutes on one H100/H200 (DEVELOPERS.md says how to run it
# on a lent machine, in one or two calls).
#
#   bash benchmarks/gpu_check.sh --dry-run           # here, on a CPU: the plan, and the configs compose
#   bash benchmarks/gpu_check.sh --out DIR           # on a GPU: everything (needs bitsandbytes and polars)
#   bash benchmarks/gpu_check.sh --part core --out DIR   # lent machine, call 1: dense precisions
#   bash benchmarks/gpu_check.sh --part bnb --out DIR    # lent machine, call 2: bitsandbytes precisions
#
# Each part: `pytest -m gpu` (its precisions), then the headline sweep on llama-1b-random at batch
# 1, 32 and 256 with energy and telemetry, then the report; all under DIR (default
# gpu-check-<UTC time>). A precision that cannot run there is a skipped row with the reason.
# Wheels found under .whl/ (DEVELOPERS.md: the wheel bundle) are installed into $QB_SITE first.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
part=all
out=""
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --part) part="${2:?--part needs core, bnb or all}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1'; use --dry-run, --part core|bnb|all, --out DIR" >&2; exit 2 ;;
  esac
  shift
done
case "$part" in core|bnb|all) ;; *) echo "gpu_check.sh: --part must be core, bnb or all, got '$part'" >&2; exit 2 ;; esac

PYTHON="${PYTHON:-python3}"
MODEL="${GPU_CHECK_MODEL:-llama-1b-random}"  # another model or batch list: a smoke test of the script itself
BATCHES="${GPU_CHECK_BATCHES:-1,32,256}"
# Numbers worth reading in a few minutes: 2 warm-ups, then >= 5 iterations and 1 s, at most 20 s a job.
BENCH=(bench.warmup_iterations=2 bench.min_iterations=5 bench.min_seconds=1 bench.max_seconds=20
       bench.warmup_max_seconds=20 bench.max_new_tokens=32 bench.max_input_tokens=64 bench.timeout_s=150)
PYTEST_TIMEOUT_S=150
SWEEP_TIMEOUT_S=280
REPORT_TIMEOUT_S=30

# The sweep's precisions, from the shipped configs: bitsandbytes' (bnb-*: its 43 MB wheel) in part
# bnb, every other torch precision (dense, fp8, torchao, ...) in part core. Left out of the sweep:
# GGUF types (llama.cpp's own build) and calibration methods (GPTQ, AWQ, AutoRound take minutes on
# a 1B model; pytest -m gpu runs them on tiny-llama).
core_list=() bnb_list=() left_out=()
for file in quantbench/conf/precision/*.yaml; do
  name=$(basename "$file" .yaml)
  backend=$(sed -n 's/^backend: *//p' "$file")
  case "$name:$backend" in
    gguf-*|gptq*|awq*|autoround*|*:gptq|*:awq|*:autoround) left_out+=("$name") ;;
    *:bnb-*) bnb_list+=("$name") ;;
    *) core_list+=("$name") ;;
  esac
done
core=$(IFS=,; echo "${core_list[*]}")
bnb=$(IFS=,; echo "${bnb_list[*]}")
# pytest: part bnb runs the bitsandbytes precisions' cases, part core every other test.
bnb_tests=()
for name in "${bnb_list[@]}"; do bnb_tests+=("tests/e2e/test_gpu.py::test_precision_runs_on_cuda[$name]"); done
case "$part" in
  core) precisions=$core; pytest_args=(tests/e2e/test_gpu.py); for test in "${bnb_tests[@]}"; do pytest_args+=(--deselect "$test"); done ;;
  bnb) precisions=$bnb; pytest_args=("${bnb_tests[@]}") ;;
  all) precisions="$core${bnb:+,$bnb}"; pytest_args=(tests/e2e/test_gpu.py) ;;
esac
out="${out:-gpu-check-$(date -u +%Y%m%d-%H%M%S)}"

plan() {
  echo "gpu_check plan (part $part):"
  echo "  1. pytest -m gpu ${pytest_args[*]}   (<= ${PYTEST_TIMEOUT_S}s)"
  echo "  2. python -m quantbench -m model=$MODEL precision=$precisions batch=$BATCHES ${BENCH[*]}   (<= ${SWEEP_TIMEOUT_S}s)"
  echo "  3. quantbench report   (<= ${REPORT_TIMEOUT_S}s)"
  echo "  output: $out/ (pytest.log, pytest.xml, sweep-$part/, report in sweep-$part/ or report/)"
  echo "  left out of the sweep (llama.cpp, or minutes of calibration; pytest covers them): ${left_out[*]}"
}

if ((dry_run)); then
  plan
  # The configs of every planned job compose (CPU, no torch); what the wheel bundle must bring.
  PLAN_MODEL=$MODEL PLAN_PRECISIONS="$core${bnb:+,$bnb}" PLAN_BATCHES=$BATCHES PLAN_BENCH="${BENCH[*]}" "$PYTHON" - <<'EOF'
import importlib.resources, os, sys
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from quantbench.config.schema import register_configs

model = os.environ["PLAN_MODEL"]
if importlib.resources.files("quantbench.conf").joinpath(f"model/{model}.yaml").is_file() is False:
    print(f"  missing: model config {model} (quantbench/conf/model/{model}.yaml); the sweep would fail until it exists")
    sys.exit(0)
register_configs()
GlobalHydra.instance().clear()
precisions = [name for name in os.environ["PLAN_PRECISIONS"].split(",") if name]
batches = [int(batch) for batch in os.environ["PLAN_BATCHES"].split(",")]
with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
    for precision in precisions:  # the batch is a plain value: one composition per precision checks the group
        cfg = compose(config_name="config", overrides=[f"model={model}", f"precision={precision}", f"batch={max(batches)}", *os.environ["PLAN_BENCH"].split()])
        assert cfg.model.name == model and cfg.precision.name == precision, (cfg.model.name, cfg.precision.name)
print(f"  configs compose: {len(precisions)} precisions x {len(batches)} batches = {len(precisions) * len(batches)} jobs ({model})")
# Not on the lent machine's image (KINDS.md): these come as wheels (DEVELOPERS.md).
needed = {"hydra": "hydra-core", "omegaconf": "omegaconf", "antlr4": "antlr4-python3-runtime (built with pip wheel)",
          "polars": "polars + polars-runtime-32", "bitsandbytes": "bitsandbytes (part bnb)"}
print("  wheels the lent machine needs: " + ", ".join(needed.values()) + ", and quantbench's own (pip wheel --no-deps .)")
EOF
  status=$?
  if [[ -d .whl ]]; then
    echo "  wheel bundle here: $(du -sh .whl | cut -f1) in .whl/ ($(find .whl -name '*.whl' | wc -l) wheels; 64 MiB travel per call)"
  fi
  exit $status
fi

mkdir -p "$out"
log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$out/gpu_check.log"; }
started=$(date +%s)

# Wheels brought along (.whl/**/*.whl): installed beside the image's packages, never over torch.
site="${QB_SITE:-/tmp/qb-site}"
if compgen -G ".whl/*.whl" >/dev/null || compgen -G ".whl/*/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    $(find .whl -name '*.whl') 2>&1 | tail -3 | tee -a "$out/gpu_check.log"
fi
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
export QUANTBENCH_CACHE="${QUANTBENCH_CACHE:-/tmp/qb-gpu-cache}"  # outside $out: models are GBs
export PYTHONUNBUFFERED=1

plan | tee -a "$out/gpu_check.log"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv 2>&1 | tee -a "$out/gpu_check.log"
else
  log "nvidia-smi not found: no NVIDIA driver here; the GPU tests skip and the sweep runs on the CPU"
fi
missing=$("$PYTHON" - <<'EOF'
import importlib.util
print(" ".join(name for name in ("hydra", "omegaconf", "polars", "torch", "transformers", "bitsandbytes", "quantbench")
               if importlib.util.find_spec(name) is None))
EOF
)
log "python: $("$PYTHON" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)' 2>&1)"
log "not importable here: ${missing:-nothing}"
for required in hydra omegaconf polars; do
  if [[ " $missing " == *" $required "* ]]; then
    log "cannot run: $required is missing; bring it in the wheel bundle (DEVELOPERS.md), or run --part core first on this machine"
    exit 3
  fi
done

code=0
log "1/3 pytest -m gpu"
timeout "$PYTEST_TIMEOUT_S" "$PYTHON" -m pytest -m gpu "${pytest_args[@]}" -q -rs \
  --junitxml "$out/pytest-$part.xml" 2>&1 | tee "$out/pytest-$part.log"
pytest_code=${PIPESTATUS[0]}
log "pytest exit $pytest_code"
((pytest_code == 0 || pytest_code == 5)) || code=$pytest_code

# Only the precisions whose backend can run on this GPU (its package imports, the compute capability
# suffices), each one left out logged with its reason: a skipped job still costs a process start,
# and 8 minutes do not allow many. pytest -m gpu above reports each of them as a skip too.
runnable=$("$PYTHON" - "$precisions" 2> >(tee -a "$out/gpu_check.log" >&2) <<'EOF'
import sys
from omegaconf import OmegaConf
from quantbench.config import registry
from quantbench.runtime.device import resolve_device
device = resolve_device("auto")
runnable = []
for name in filter(None, sys.argv[1].split(",")):
    backend = OmegaConf.load(f"quantbench/conf/precision/{name}.yaml").get("backend") or name
    try:
        loaded = registry.backends().get(backend)
        check = getattr(loaded, "unavailable_reason", None)
        reason = check(device) if check else None
    except Exception as error:  # noqa: BLE001 - any failure to load is a reason to leave it out
        reason = f"{type(error).__name__}: {error}"
    if reason:
        print(f"[gpu_check] left out of the sweep: {name}: {reason}", file=sys.stderr)
    else:
        runnable.append(name)
print(",".join(runnable))
EOF
)
[[ -n "$runnable" || -z "$precisions" ]] || log "no precision of part $part can run here"
precisions=$runnable
sweep="$out/sweep-$part"
if [[ -n "$precisions" ]]; then
  log "2/3 sweep: $MODEL precision=$precisions batch=$BATCHES"
  timeout "$SWEEP_TIMEOUT_S" "$PYTHON" -m quantbench -m "model=$MODEL" "precision=$precisions" "batch=$BATCHES" "${BENCH[@]}" \
    "hydra.sweep.dir=$sweep" analysis.report_at_end=false 2>&1 | tee "$out/sweep-$part.log"
  sweep_code=${PIPESTATUS[0]}
  log "sweep exit $sweep_code"
  ((sweep_code == 0 || code != 0)) || code=$sweep_code
else
  log "2/3 sweep: no precision of part $part has a config here"
fi

log "3/3 report"
sweeps=()
for candidate in "$out/sweep-core" "$out/sweep-bnb" "$out/sweep-all"; do [[ -d $candidate ]] && sweeps+=("$candidate"); done
if ((${#sweeps[@]} == 1)); then
  timeout "$REPORT_TIMEOUT_S" "$PYTHON" -m quantbench.cli.main report "${sweeps[0]}" 2>&1 | tee -a "$out/gpu_check.log"
elif ((${#sweeps[@]} > 1)); then
  # Part bnb after part core: one report over both, so nf4 and int8 compare with fp32.
  timeout "$REPORT_TIMEOUT_S" "$PYTHON" -m quantbench.cli.main report "${sweeps[@]}" --output "$out/report" 2>&1 | tee -a "$out/gpu_check.log"
fi
log "done in $(($(date +%s) - started)) s; results under $out (exit $code)"
exit "$code"
