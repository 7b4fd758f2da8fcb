"""Quality of a loaded model: WikiText-2 perplexity, KL divergence to the reference precision,
PubMedQA accuracy. The job calls `evaluate_quality` after the speed measurement, on the model it
already has loaded; the metrics it returns (scalars, with their intervals and the settings they
were measured at) go into result.json and the summary like every other metric.

Which metrics run is the `quality` config: `quality=[ppl,kld,pubmedqa]` adds their sub-nodes;
with none of them (the default) nothing here runs. A metric that does not apply to the model
(PubMedQA log-likelihoods of an encoder-decoder, say) is left out with its reason in
`quality_skipped`; any other error fails the job like every other error in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from omegaconf import DictConfig

from quantbench.cache import cache_root
from quantbench.jobdir import PREDICTIONS_FILE
from quantbench.quality.scoring import QualityUnavailable, TokenScorer

if TYPE_CHECKING:
    from quantbench.backends.base import LoadedModel
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device
    from quantbench.runtime.progress import JobProgress

METRICS = ("ppl", "kld", "pubmedqa")


def selected_metrics(cfg: DictConfig) -> list[str]:
    quality = cfg.get("quality")
    return [name for name in METRICS if quality is not None and quality.get(name) is not None]


def evaluate_quality(
    cfg: DictConfig,
    loaded: LoadedModel,
    family: Any,
    spec: ModelSpec,
    device: Device,
    job_dir: Path,
    progress: JobProgress | None = None,
    scorer: Any = None,
    observers: Sequence[Any] = (),
) -> dict[str, Any]:
    """`scorer`: an engine's own TokenScorer (llama.cpp's logits); by default the loaded transformers model.
    `observers`: the engine's own comparisons on the perplexity/KL pass (quality/text.py's WindowObserver)."""
    selected = selected_metrics(cfg)
    if not selected:
        return {}
    if cfg.model.get("speed_only"):
        from quantbench.models.random_init import speed_only_reason

        return {"quality_skipped": f"{', '.join(selected)}: {speed_only_reason(cfg.model)}"}
    from quantbench.atomic import write_parquet_atomic
    from quantbench.quality.pubmedqa import evaluate_pubmedqa
    from quantbench.quality.text import evaluate_text_metrics

    quality = cfg.quality
    tick = progress.tick if progress is not None else None
    metrics: dict[str, Any] = {}
    skipped: list[str] = []
    try:
        scorer = scorer or TokenScorer(family, loaded.model, loaded.processor, device.torch_device)
    except QualityUnavailable as reason:
        return {"quality_skipped": f"{', '.join(selected)}: {reason}"}
    if "ppl" in selected or "kld" in selected:
        if progress is not None:
            progress.status(
                f"quality: {' and '.join(name for name in selected if name != 'pubmedqa')} on {quality.text.name}"
            )
        try:
            metrics.update(
                evaluate_text_metrics(
                    quality,
                    scorer,
                    job_precision=cfg.precision,
                    spec=spec,
                    device=device,
                    cache_dir=cache_root(cfg.cache_dir),
                    tick=tick,
                    observers=observers,
                )
            )
        except QualityUnavailable as reason:
            skipped.append(f"ppl/kld: {reason}")
    if "pubmedqa" in selected:
        if progress is not None:
            progress.status(f"quality: PubMedQA ({quality.pubmedqa.split} split, {quality.pubmedqa.mode})")
        try:
            accuracy, predictions = evaluate_pubmedqa(quality, scorer, device=device.torch_device, tick=tick)
            write_parquet_atomic(Path(job_dir) / PREDICTIONS_FILE, predictions)
            metrics.update(accuracy)
        except QualityUnavailable as reason:
            skipped.append(f"pubmedqa: {reason}")
    if skipped:
        metrics["quality_skipped"] = "; ".join(skipped)
    return metrics
