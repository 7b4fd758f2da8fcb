"""The `quality` node and the sub-nodes its group's options add (conf/quality/): perplexity, KL
divergence against a reference precision, and PubMedQA accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from quantbench.config.schema.dataset import PubMedQADatasetConfig, WikiTextDatasetConfig


@dataclass
class PerplexityQualityConfig:
    """quality.ppl, present when `ppl` is selected: it scores quality.text in quality's windows."""


@dataclass
class FidelityQualityConfig:
    """quality.kld: KL divergence and top-1 agreement against a reference precision."""

    reference: str = "auto"  # a precision option (fp32, bf16, ...); auto: fp32 on CPU, bf16 on GPU
    top_k: int = 32  # reference log-probs kept per token; the rest is one "other" bucket


@dataclass
class PubMedQAQualityConfig(PubMedQADatasetConfig):
    """quality.pubmedqa: the questions (read by the pubmedqa loader) and how they are answered."""

    name: str = "pubmedqa"
    loader: str = "pubmedqa"
    path: Optional[str] = "${..data_dir}/pubmedqa/ori_pqal.json"  # the hub when no file is there
    hub_id: Optional[str] = "qiaojin/PubMedQA"
    # loglikelihood: lm-eval's protocol (argmax of log P(" yes"/" no"/" maybe" | prompt));
    # generate: greedy answer, parsed for the first yes/no/maybe (for chat models).
    mode: str = "loglikelihood"
    max_prompt_tokens: int = 2048  # longer prompts lose their beginning, as in lm-eval
    # loglikelihood mode: questions per transformers forward pass (right-padded, logits only at the
    # answers' positions); the answers do not depend on it (within 1e-3 nats). 1: on a CPU larger
    # batches were no faster (docs/results/pubmedqa_scoring.md); raise it on a GPU. llama.cpp scores
    # one question per decode call whatever it is (quantbench/gguf/scoring.py says why).
    batch_size: int = 1
    max_new_tokens: int = 8  # generate mode
    chat_template: bool = True  # generate mode, where the tokenizer has one


@dataclass
class QualityConfig:
    """`quality=[ppl,kld,pubmedqa]` adds the sub-nodes; none selected (the default) is a pure speed run."""

    limit: Optional[int] = None  # quick runs: at most this many text windows and PubMedQA questions
    confidence: float = 0.95  # of every interval
    # Where the local data files live (pubmedqa/, wikitext-2/): $QUANTBENCH_DATA, else a per-user
    # folder; a missing file falls back to the hub (quantbench/quality/sources.py).
    data_dir: str = "${oc.env:QUANTBENCH_DATA,'~/.cache/quantbench/data'}"
    # The evaluation text of perplexity and KL divergence, read by a dataset plugin.
    text: Any = field(
        default_factory=lambda: WikiTextDatasetConfig(
            name="wikitext2",
            loader="wikitext2",
            path="${..data_dir}/wikitext-2/test.txt",
            hub_id="wikitext",
            split="test",
        )
    )
    context_tokens: int = 512  # window length
    stride: int = 512  # window start to window start; each window scores the tokens not scored before
    max_tokens: Optional[int] = None  # use only the first N tokens of the text (CPU runs)
    ppl: Optional[PerplexityQualityConfig] = None
    kld: Optional[FidelityQualityConfig] = None
    pubmedqa: Optional[PubMedQAQualityConfig] = None
