"""dataset=synthetic's lengths (each distribution seeded and clipped) and its samples, from real configs."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from quantbench.data.lengths import DISTRIBUTIONS, length_distribution
from quantbench.data.synthetic import SyntheticText
from quantbench.errors import JobSkipped

KEY = "dataset.input_tokens"


def lengths(**settings):
    node = OmegaConf.create({"distribution": "fixed", "mean": 100, "stdev": 0, "min": 1, "max": None} | settings)
    return length_distribution(node, KEY)


@pytest.mark.parametrize("kind", DISTRIBUTIONS)
def test_each_distribution_is_seeded_clipped_and_keeps_its_mean(kind):
    spec = lengths(distribution=kind, mean=300, stdev=60, min=250, max=380)
    drawn = spec.draw(np.random.default_rng(7), 20_000)
    assert drawn.dtype == np.int64 and drawn.min() >= 250 and drawn.max() <= 380
    assert np.array_equal(drawn, spec.draw(np.random.default_rng(7), 20_000))  # seeded
    if kind == "fixed":
        assert set(drawn.tolist()) == {300}
        return
    assert not np.array_equal(drawn, spec.draw(np.random.default_rng(8), 20_000))
    assert drawn.min() == 250  # the lower tail was clipped, not redrawn
    unclipped = lengths(distribution=kind, mean=300, stdev=60).draw(np.random.default_rng(1), 50_000)
    assert abs(unclipped.mean() - 300) < 3 and abs(unclipped.std() - 60) < 3


def test_uniform_spreads_over_the_width_of_its_stdev():
    drawn = lengths(distribution="uniform", mean=100, stdev=10).draw(np.random.default_rng(0), 10_000)
    half = 10 * np.sqrt(3)
    assert drawn.min() == round(100 - half) and drawn.max() == round(100 + half)


def test_lognormal_has_a_long_right_tail():
    drawn = lengths(distribution="lognormal", mean=200, stdev=150).draw(np.random.default_rng(0), 50_000)
    assert np.median(drawn) < drawn.mean() and np.percentile(drawn, 99) > 3 * np.median(drawn)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min": 50, "max": 10}, "dataset.input_tokens.min=50 is above dataset.input_tokens.max=10"),
        ({"distribution": "gaussian"}, "dataset.input_tokens.distribution: unknown length distribution 'gaussian'"),
        ({"mean": 500, "max": 400}, "dataset.input_tokens.mean=500 is outside"),
        ({"mean": 5, "min": 10}, "dataset.input_tokens.mean=5 is outside"),
        ({"stdev": -1}, "dataset.input_tokens.stdev must not be negative"),
        ({"min": 0}, "dataset.input_tokens.min must be at least 1"),
    ],
)
def test_bad_length_settings_are_skipped_naming_the_key(settings, message):
    with pytest.raises(JobSkipped, match=message.replace(".", r"\.").replace("(", r"\(")):
        lengths(**settings)


def test_samples_of_a_composed_config_carry_lengths_groups_and_turns(compose_config, shared_data):
    overrides = [
        "dataset=synthetic",
        "dataset.n_prompts=6",
        "dataset.input_tokens.distribution=normal",
        "dataset.input_tokens.stdev=20",
        "dataset.prefix.groups=2",
        "dataset.prefix.tokens=16",
        "dataset.conversation.turns=3",
        "bench.max_new_tokens=12",
        f"quality.data_dir={shared_data}",
    ]
    cfg = compose_config(overrides)
    samples = SyntheticText().load(cfg.dataset)
    assert len(samples) == 18 and [s.id for s in samples[:4]] == [
        "synthetic-0-turn0",
        "synthetic-0-turn1",
        "synthetic-0-turn2",
        "synthetic-1-turn0",
    ]
    assert {s.meta["output_tokens"] for s in samples} == {12}  # output defaults to bench.max_new_tokens
    assert len({s.meta["input_tokens"] for s in samples}) > 3
    for conversation in range(6):
        turns = samples[3 * conversation : 3 * conversation + 3]
        assert [t.meta["turn"] for t in turns] == [0, 1, 2] and {t.meta["conversation"] for t in turns} == {
            conversation
        }
        assert len({t.meta["prefix_group"] for t in turns}) == 1  # a conversation keeps its system prompt
    groups = {s.meta["prefix_group"]: s.meta["prefix_text"] for s in samples}
    assert set(groups) == {0, 1} and groups[0] != groups[1]
    wikitext = (shared_data / "wikitext-2" / "test.txt").read_text()
    assert all(s.text[:200] in wikitext for s in samples)  # real text, cut from the source
    assert cfg.dataset.seed == cfg.bench.seed == 0  # the job's seed unless the dataset gets its own
    again = SyntheticText().load(cfg.dataset)
    assert [s.text for s in again] == [s.text for s in samples]
    cfg.dataset.seed = 1
    assert [s.text for s in SyntheticText().load(cfg.dataset)] != [s.text for s in samples]


BAD_WORKLOADS = [
    ({"prefix.groups": 3}, "dataset.prefix.groups=3 and dataset.prefix.tokens=0"),
    ({"source": "pubmedqa"}, "dataset.source: unknown synthetic text source 'pubmedqa'"),
    ({"n_prompts": 0}, "dataset.n_prompts must be at least 1"),
    ({"conversation.turns": 0}, "dataset.conversation.turns must be at least 1"),
    ({"output_tokens.min": 40, "output_tokens.max": 20}, "dataset.output_tokens.min=40 is above"),
]


def test_bad_workload_settings_are_skipped_naming_the_key(compose_config):
    composed = compose_config(["dataset=synthetic", "dataset.source=builtin"]).dataset
    for changes, message in BAD_WORKLOADS:
        node = composed.copy()
        for key, value in changes.items():
            OmegaConf.update(node, key, value)
        with pytest.raises(JobSkipped, match=message.replace(".", r"\.")):
            SyntheticText().load(node)


def test_builtin_source_and_the_long_context_option(compose_config):
    samples = SyntheticText().load(compose_config(["dataset=synthetic", "dataset.source=builtin"]).dataset)
    assert len(samples) == 256 and samples[0].meta["input_tokens"] == 128 and samples[0].meta["conversation"] is None
    long = compose_config(["dataset=long-context"]).dataset
    assert long.loader == "synthetic" and long.input_tokens.max is None and long.input_tokens.mean == 4096
