"""Prompts cut to an exact token count on tiny-llama's tokenizer, with and without a chat template,
with shared prefixes; the model's context; the workload a serving job builds from a real config."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantbench.config import registry
from quantbench.data.builtin import BuiltinPrompts
from quantbench.data.synthetic import SyntheticText
from quantbench.errors import JobSkipped
from quantbench.loadgen.load import Level
from quantbench.loadgen.prompts import Prompt
from quantbench.loadgen.synthetic import (
    RequestShape,
    all_prompts,
    cut_prompts,
    fit_context,
    fit_text,
    longest_request_tokens,
    shapes_of,
)
from quantbench.loadgen.workload import read_serve_trace, serve_workload
from quantbench.models.source import resolve_model

# A template of the ChatML kind SmolLM2 uses, for a tokenizer that has none of its own.
CHATML = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_spec():
    """tiny-llama, materialised once for the module (its config composed as the app does)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from quantbench.config.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=tiny-llama"])
    GlobalHydra.instance().clear()
    return resolve_model(cfg.model, registry.families().get("decoder"), Path(cfg.cache_dir))


@pytest.fixture
def tokenizer(tiny_spec):
    """tiny-llama's tokenizer (SentencePiece with byte fallback: a character outside its corpus is
    several tokens, which is where a cut lands beside its target); no chat template of its own."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_spec.load_path)


def synthetic_config(compose_config, *overrides):
    return compose_config(
        ["model=tiny-llama", "scenario=serve", "dataset=synthetic", "dataset.source=builtin", *overrides]
    )


def served_count(tokenizer, prompt: Prompt) -> int:
    """As transformers serve counts it: the template tokenized by apply_chat_template itself, or the text."""
    if prompt.chat:
        messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [
            {"role": "user", "content": prompt.text}
        ]
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"])
    text = (prompt.system + "\n\n" if prompt.system else "") + prompt.text
    return len(tokenizer(text)["input_ids"])


@pytest.mark.parametrize("chat", [False, True])
def test_every_prompt_has_exactly_its_input_count_prefix_and_template_included(compose_config, tokenizer, chat):
    if chat:
        tokenizer.chat_template = CHATML
    overrides = ["n_prompts=60", "prefix.groups=3", "prefix.tokens=12", "input_tokens.distribution=lognormal"]
    overrides += ["input_tokens.stdev=40", "input_tokens.min=30"]
    samples = SyntheticText().load(synthetic_config(compose_config, *(f"dataset.{o}" for o in overrides)).dataset)
    prompts, off_target = cut_prompts(shapes_of(samples), tokenizer, chat, "dataset.input_tokens")
    assert off_target == 0 and len(prompts) == 60 and all(p.chat is chat for p in prompts)
    assert [p.input_tokens for p in prompts] == [s.meta["input_tokens"] for s in samples]
    assert [served_count(tokenizer, p) for p in prompts] == [p.input_tokens for p in prompts]
    systems = {p.prefix_group: p.system for p in prompts}
    assert len(systems) == 3 and all(
        len(tokenizer(s, add_special_tokens=False)["input_ids"]) == 12 for s in systems.values()
    )
    assert all(p.system == systems[p.prefix_group] for p in prompts)  # one system prompt per group
    assert [p.max_tokens for p in prompts] == [s.meta["output_tokens"] for s in samples]


def test_a_cut_that_whole_tokens_jump_over_lands_by_characters(tokenizer):
    # Characters outside tiny-llama's corpus are 2-3 byte tokens each; decoded by halves they are
    # replacement characters, so most targets are missed by cutting whole tokens.
    passage = "Café – déjà vu ™ naïve “quoted” ½ → über ✓ " * 6
    ids = tokenizer(passage, add_special_tokens=False)["input_ids"]

    def count(text):
        return len(tokenizer(text)["input_ids"])

    for target in range(5, 90):
        text, counted = fit_text(ids, tokenizer.decode, count, target, 1)
        assert counted == target == count(text), (target, text)


def test_a_request_too_short_for_its_template_names_the_key(tokenizer):
    tokenizer.chat_template = CHATML
    shape = RequestShape(id="r", passage="some real words here " * 20, input_tokens=4, output_tokens=8)
    with pytest.raises(JobSkipped, match=r"dataset\.input_tokens: a request of 4 input tokens cannot hold the chat"):
        cut_prompts([shape], tokenizer, True, "dataset.input_tokens")


def test_lengths_beyond_the_context_are_clipped_or_skipped():
    shapes = [RequestShape(id=f"r{i}", passage="", input_tokens=n, output_tokens=16) for i, n in enumerate((100, 900))]
    assert [s.input_tokens for s in fit_context(shapes, 512, True, "dataset.input_tokens")] == [100, 496]
    assert fit_context(shapes, None, False, "k") == shapes  # a context the config does not state: unchecked
    with pytest.raises(JobSkipped, match=r"request r1 needs 900 input \+ 16 output tokens, beyond the model's context"):
        fit_context(shapes, 512, False, "dataset.input_tokens")


def test_the_longest_request_of_a_conversation_carries_its_history():
    later = Prompt(id="c-1", text="b", chat=True, input_tokens=50, max_tokens=20)
    first = Prompt(id="c-0", text="a", chat=True, input_tokens=40, max_tokens=10, turns=(later,))
    alone = Prompt(id="x", text="x", chat=True, input_tokens=70)
    assert longest_request_tokens([alone], 32) == 102
    assert longest_request_tokens([first, alone], 32) == 40 + 10 + 50 + 20 + 8  # the reply's template, bounded


def test_a_serving_jobs_workload_fits_its_model_and_ignores_the_input_cap(compose_config, tokenizer, tiny_spec):
    cfg = synthetic_config(compose_config)
    cfg.dataset.input_tokens.mean, cfg.dataset.n_prompts, cfg.bench.max_input_tokens = 900, 8, 256
    cfg.dataset.input_tokens.distribution, cfg.dataset.input_tokens.stdev = "uniform", 100
    setup = SimpleNamespace(dataset=SyntheticText().load(cfg.dataset), spec=tiny_spec)
    levels = [Level(0, concurrency=1)]
    prompts, same, facts = serve_workload(cfg, setup, tokenizer, levels, None)
    assert same == levels and facts["workload"] == "synthetic" and facts["model_context_tokens"] == 1024
    drawn = [s.meta["input_tokens"] for s in setup.dataset]
    assert max(drawn) > 1024 - 32 and max(p.input_tokens for p in prompts) == 1024 - 32  # clipped to fit
    assert min(p.input_tokens for p in prompts) > 256  # bench.max_input_tokens does not cut them
    cfg.dataset.input_tokens.max = 2000
    with pytest.raises(JobSkipped, match=r"beyond the model's context of 1024; lower dataset\.input_tokens\.max"):
        serve_workload(cfg, setup, tokenizer, levels, None)


def test_a_trace_becomes_one_level_of_exact_prompts_on_its_schedule(compose_config, tokenizer, tiny_spec, tmp_path):
    lines = [
        {"arrival_s": 0.0, "input_tokens": 40, "output_tokens": 5, "conversation_id": "c1"},
        {"arrival_s": 0.5, "input_tokens": 60, "output_tokens": 3, "prefix_group": 7, "prefix_tokens": 16},
        {"arrival_s": 1.0, "input_tokens": 30, "output_tokens": 4, "conversation_id": "c1"},
        {"arrival_s": 2.0, "input_tokens": 80, "output_tokens": 6, "prefix_group": 7, "prefix_tokens": 16},
    ]
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cfg = compose_config(["model=tiny-llama", "scenario=serve", f"serve.trace={path}", "serve.trace_speed=2"])
    trace = read_serve_trace(cfg.serve)
    setup = SimpleNamespace(dataset=BuiltinPrompts().load(cfg.dataset), spec=tiny_spec)
    prompts, levels, facts = serve_workload(cfg, setup, tokenizer, [Level(0, concurrency=1)], trace)
    assert facts | {"model_context_tokens": None} == {
        "workload": "trace",
        "trace_requests": 4,
        "trace_speed": 2.0,
        "trace_span_s": 1.0,
        "synthetic_inputs_off_target": 0,
        "model_context_tokens": None,
    }
    [level] = levels
    assert level.label == "trace" and level.concurrency is None and level.request_rate is None
    schedule = level.schedule
    assert [(a.offset_s, a.prompt.id, a.later_offsets_s) for a in schedule] == [
        (0.0, "trace-line1", (0.5,)),  # times halved by trace_speed=2
        (0.25, "trace-line2", ()),
        (1.0, "trace-line4", ()),
    ]
    conversation = schedule[0].prompt
    assert [t.id for t in conversation.turns] == ["trace-line3"] and conversation.turns[0].turn == 1
    assert [p.input_tokens for p in all_prompts(prompts)] == [40, 30, 60, 80]
    assert [p.max_tokens for p in all_prompts(prompts)] == [5, 4, 3, 6]
    assert schedule[1].prompt.system == schedule[2].prompt.system  # one shared prefix of 16 tokens
    assert len(tokenizer(schedule[1].prompt.system, add_special_tokens=False)["input_ids"]) == 16
    path.write_text(json.dumps({"arrival_s": 0, "input_tokens": 1000, "output_tokens": 30}) + "\n")
    with pytest.raises(JobSkipped, match=r"line 1: 1000 input \+ 30 output tokens do not fit the model's context"):
        serve_workload(cfg, setup, tokenizer, levels, read_serve_trace(cfg.serve))
    cfg.serve.request_rate = [4.0]
    with pytest.raises(JobSkipped, match="serve.trace replays its own arrivals"):
        read_serve_trace(cfg.serve)
