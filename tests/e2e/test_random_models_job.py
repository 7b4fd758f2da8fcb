"""A random-init model in a real job: a padded vocabulary decodes every id, and quality is refused."""

from __future__ import annotations

import json


def test_a_padded_vocabulary_runs_decodes_and_refuses_quality(tmp_path, run_quantbench):
    """A tiny decoder with a vocabulary larger than its trained tokenizer, marked speed_only, asked
    for perplexity: the job runs, every id decodes, and quality is skipped with the reason."""
    run = run_quantbench(
        [
            "model=tiny-llama",
            "bench=quick",
            "batch=1",
            "+model.architecture.vocab_size=700",
            "model.speed_only=true",
            "quality=[ppl]",
            "analysis.report_at_end=false",
        ],
        tmp_path,
    )
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert not [name for name in metrics if name.startswith("ppl")]
    assert metrics["quality_skipped"].startswith("ppl: model 'tiny-llama' has random weights (model.speed_only=true)")

    from transformers import AutoTokenizer

    from quantbench.cache import cache_root

    [entry] = [
        path
        for path in (cache_root(result["config"]["cache_dir"]) / "models").glob("tiny-llama-*")
        if json.loads((path / "config.json").read_text())["vocab_size"] == 700
    ]
    tokenizer = AutoTokenizer.from_pretrained(entry)
    assert len(tokenizer) == 700
    assert tokenizer.decode([699]) == "<unused_699>"
    assert all(
        token_id < 512 for token_id in tokenizer("What is the answer?").input_ids
    )  # text never encodes to padding
