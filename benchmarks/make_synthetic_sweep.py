"""A sweep directory of N finished jobs, as a real sweep leaves it, without running them: for timing
`quantbench collect`, `report` and `resume` planning at thousands of jobs (benchmarks/sweep_scale.py).

It starts from a real job: one tiny-llama job is run (or `--template` names a one-job sweep made
before), and its files are the mould. Every job of a realistic grid (models x precisions x batches x
repeats, through quantbench's own sweeper: the job numbers and overrides a real sweep would have)
gets that job's files with its identity changed: `.hydra/config.yaml`, `hydra.yaml` and
`overrides.yaml` as Hydra writes them, `result.json` with the job's composed config (one Hydra
composition per model and precision) and its config hash, plausible metrics (throughput by precision
and batch, log-normal noise), the measurement files (`iterations.parquet`, `telemetry.parquet`),
the job log, and the reuse record a finished job leaves. About 6% of the jobs are `failed` (with a
traceback) and 4% `skipped`, as on a shared cluster.

    python benchmarks/make_synthetic_sweep.py --jobs 10000 --out /tmp/sweep-10k
    python benchmarks/make_synthetic_sweep.py --jobs 1000 --out /tmp/sweep-1k --template TEMPLATE

(TEMPLATE: the one-job sweep the first run printed.)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MODELS = ("tiny-llama", "smollm2-135m", "llama-3.2-1b", "phi-2", "tiny-t5")
# (option, throughput relative to fp32, weight memory relative to fp32)
PRECISIONS = (
    ("fp32", 1.0, 1.0),
    ("bf16", 1.6, 0.5),
    ("fp16", 1.6, 0.5),
    ("int8", 0.8, 0.28),
    ("nf4", 0.7, 0.16),
    ("gptq", 1.2, 0.16),
    ("awq", 1.3, 0.16),
    ("hqq-4bit", 0.9, 0.16),
    ("gguf-q4_k_m", 1.4, 0.15),
    ("gguf-q8_0", 1.2, 0.27),
)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
TEMPLATE_SWEEP = ["-m", "model=tiny-llama", "bench=quick", "precision=fp32", "analysis.report_at_end=false"]
FAILED_REASONS = (
    "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "the job's process was killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)",
    "timed out after 3600 s (bench.timeout_s); the job's process was killed",
)
SKIPPED_REASON = "gguf-q4_k_m needs llama.cpp's tools; install them with `quantbench engines install llama.cpp`"


def grid(jobs: int) -> tuple[list[int], int]:
    """(batches, repeats) so that models x precisions x batches x repeats == jobs."""
    configurations = len(MODELS) * len(PRECISIONS)
    for count in (8, 4, 2, 1):
        if jobs % (configurations * count) == 0:
            return list(BATCHES[:count]), jobs // (configurations * count)
    raise SystemExit(f"--jobs must be a multiple of {configurations} (models x precisions); got {jobs}")


def make_template(directory: Path) -> Path:
    """A one-job tiny-llama sweep, run for real: the files every synthetic job is made from."""
    environment = {**os.environ, "QUANTBENCH_ISOLATION": "none"}
    command = [sys.executable, "-m", "quantbench", *TEMPLATE_SWEEP, f"hydra.sweep.dir={directory}"]
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
    if json.loads((directory / "0" / "result.json").read_text())["status"] != "ok":
        raise SystemExit(f"the template job in {directory} did not finish ok; see {directory / '0'}")
    return directory


def sweep_jobs(task: list[str], repeats: int) -> list[list[str]]:
    """Each job's overrides, by job number, as quantbench's sweeper enumerates them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.quantbench_sweeper.quantbench_sweeper import repeat_axis

    arguments = [*repeat_axis(repeats, task), *task]
    [jobs] = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    return jobs


class Composer:
    """Each (model, precision) composed once, as the app composes it: the job configs' sources."""

    def __init__(self, fixed: list[str], sweep_dir: Path):
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        from quantbench.config.plugin_configs import config_packages
        from quantbench.config.schema import register_configs

        register_configs()
        config_packages()
        GlobalHydra.instance().clear()
        self._context = initialize_config_module(config_module="quantbench.conf", version_base="1.3")
        self._context.__enter__()
        self.fixed = fixed
        self.sweep_dir = sweep_dir
        self._cache: dict[tuple[str, str], tuple[dict, dict]] = {}

    def configs(self, model: str, precision: str) -> tuple[dict, dict]:
        """(resolved job config, unresolved config as .hydra/config.yaml holds it)."""
        from hydra import compose
        from omegaconf import OmegaConf, open_dict

        from quantbench.jobdir import job_config

        if (model, precision) not in self._cache:
            cfg = compose("config", overrides=[*self.fixed, f"model={model}", f"precision={precision}"])
            with open_dict(cfg):
                cfg.pop("hydra", None)
            self._cache[model, precision] = (job_config(cfg), OmegaConf.to_container(cfg, resolve=False))
        return self._cache[model, precision]

    def fingerprint(self, hydra_overrides: list[str]) -> str:
        """What the sweeper will compute when this sweep is resumed (quantbench.sweep.plan)."""
        from hydra import compose
        from hydra.core.global_hydra import GlobalHydra

        from quantbench.sweep.plan import composition_fingerprint

        sweep_config = compose("config", overrides=[*hydra_overrides], return_hydra_config=True)
        return composition_fingerprint(GlobalHydra.instance().config_loader(), sweep_config)


def _scaled_metrics(metrics: dict, speed: float, memory: float, batch: int, rng: random.Random) -> dict:
    """The template's metrics at another throughput and weight size, with log-normal noise."""
    noise = math.exp(rng.gauss(0.0, 0.05))
    throughput = speed * batch / (1 + batch / 16) * noise
    scaled = {}
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value is None:
            scaled[key] = value
        elif key in ("qps", "tokens_per_s", "tokens_per_kwh") or key.endswith("_per_s"):
            scaled[key] = value * throughput
        elif key.endswith("_ms") or "_ms_ci_" in key:
            scaled[key] = value / speed * (1 + batch / 16) * noise
        elif key == "weight_memory_gb":
            scaled[key] = value * memory
        elif key in ("peak_memory_gb", "peak_rss_gb"):
            scaled[key] = value * (0.5 + memory / 2) * (1 + batch / 64)
        else:
            scaled[key] = value
    return scaled


def write_sweep(out: Path, template: Path, jobs: int, seed: int) -> None:
    from omegaconf import OmegaConf

    from quantbench.jobdir import REUSE_RECORD_FILE, TRACEBACK_FILE, config_hash
    from quantbench.sweep.plan import write_reuse_record

    rng = random.Random(seed)
    batches, repeats = grid(jobs)
    record = OmegaConf.load(template / "multirun.yaml")
    fixed = [item for item in record.hydra.overrides.task if not item.startswith(("model=", "precision=", "batch="))]
    task = [
        *fixed,
        f"bench.repeats={repeats}",
        f"model={','.join(MODELS)}",
        f"precision={','.join(name for name, _, _ in PRECISIONS)}",
        f"batch={','.join(map(str, batches))}",
    ]
    out.mkdir(parents=True, exist_ok=True)
    record.hydra.overrides.task = task
    record.hydra.sweep.dir = str(out)
    record.bench.repeats = repeats
    OmegaConf.save(record, out / "multirun.yaml")
    hydra_overrides = [item for item in record.hydra.overrides.hydra if not item.startswith("hydra.sweep.dir=")]
    composer = Composer([*fixed, f"bench.repeats={repeats}"], out)
    fingerprint = composer.fingerprint([*hydra_overrides, f"hydra.sweep.dir={out}"])

    job0 = template / "0"
    result0 = json.loads((job0 / "result.json").read_text())
    hydra0 = yaml.load((job0 / ".hydra" / "hydra.yaml").read_text(), Loader=yaml.CSafeLoader)["hydra"]
    measurement_files = [path for path in sorted(job0.iterdir()) if path.suffix == ".parquet"]
    log_text = (job0 / "__main__.log").read_text()
    speeds = {name: (speed, memory) for name, speed, memory in PRECISIONS}
    for number, overrides in enumerate(sweep_jobs(task, repeats)):
        values = dict(item.split("=", 1) for item in overrides)
        model, precision, batch = values["model"], values["precision"], int(values["batch"])
        repeat = int(values.get("bench.repeat", 0))
        resolved, unresolved = composer.configs(model, precision)
        config = copy.deepcopy(resolved)
        config["batch"], config["bench"]["repeat"] = batch, repeat
        hydra_config = copy.deepcopy(unresolved)
        hydra_config["batch"], hydra_config["bench"]["repeat"] = batch, repeat
        job_dir = out / str(number)
        (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        (job_dir / ".hydra" / "config.yaml").write_text(yaml.dump(hydra_config, Dumper=yaml.CSafeDumper))
        (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.dump(list(overrides), Dumper=yaml.CSafeDumper))
        hydra = copy.deepcopy(hydra0)
        hydra["overrides"]["task"] = list(overrides)
        hydra["job"].update(num=number, id=str(number), override_dirname=",".join(sorted(overrides)))
        hydra["runtime"]["output_dir"] = str(job_dir)
        hydra["runtime"]["choices"].update(model=model, precision=precision)
        (job_dir / ".hydra" / "hydra.yaml").write_text(yaml.dump({"hydra": hydra}, Dumper=yaml.CSafeDumper))
        (job_dir / "__main__.log").write_text(log_text.replace("tiny-llama", model).replace("fp32", precision))

        draw = rng.random()
        status = "failed" if draw < 0.06 else "skipped" if draw < 0.10 else "ok"
        speed, memory = speeds[precision]
        result = copy.deepcopy(result0)
        result["identity"].update(
            model=model,
            precision=precision,
            batch=batch,
            backend=config["precision"].get("backend"),
            family=config["model"].get("family"),
        )
        result.update(config=config, config_hash=config_hash(config), status=status)
        if status == "ok":
            result["metrics"] = _scaled_metrics(result0["metrics"], speed, memory, batch, rng)
            result["reason"] = None
            for path in measurement_files:
                shutil.copyfile(path, job_dir / path.name)
        else:
            result["metrics"] = {}
            result["sample_output"] = []
            result["reason"] = rng.choice(FAILED_REASONS) if status == "failed" else SKIPPED_REASON
            if status == "failed":
                (job_dir / TRACEBACK_FILE).write_text(
                    f"Traceback (most recent call last):\n  ...\n{result['reason']}\n"
                )
        (job_dir / "result.json").write_text(json.dumps(result, indent=2))
        if status == "ok":
            write_reuse_record(job_dir, fingerprint, overrides, result["config_hash"])
        elif (job_dir / REUSE_RECORD_FILE).exists():
            (job_dir / REUSE_RECORD_FILE).unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000, help="how many jobs (a multiple of 50)")
    parser.add_argument("--out", type=Path, required=True, help="the sweep directory to write (must not exist)")
    parser.add_argument("--template", type=Path, help="a one-job sweep to copy from (default: run one, ~30 s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"make_synthetic_sweep: {args.out} exists; give a new directory", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.template is None:
        args.template = make_template(Path(tempfile.mkdtemp(prefix="quantbench-template-")) / "sweep")
    write_sweep(args.out, args.template, args.jobs, args.seed)
    print(
        f"wrote {args.jobs} jobs into {args.out} in {time.perf_counter() - started:.0f} s (template: {args.template})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
