"""WikiText-2 test text (Merity et al., 2016; CC BY-SA 3.0), for perplexity and KL divergence.

From a local text file (`dataset.path`, e.g. the tokenised release in $QUANTBENCH_DATA/wikitext-2/
test.txt) or from the hub (`hub_id=wikitext`, `hub_config=wikitext-2-raw-v1`, split `test`). As
samples it is one article per sample, so it also works as a prompt set; `wikitext_text` gives the
whole text, which is what perplexity is measured on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from quantbench.data.base import Sample, expand_path
from quantbench.errors import DatasetError

if TYPE_CHECKING:
    from omegaconf import DictConfig

# An article starts with a top-level heading line " = Title = "; sections use " = = Section = = ".
ARTICLE_HEADING = re.compile(r"^ = [^=].* = $", re.MULTILINE)


def wikitext_text(config: DictConfig) -> str:
    """The whole text, exactly as the file (or the hub's lines joined) has it."""
    if config.path:
        path = expand_path(config.path)
        if not path.is_file():
            raise DatasetError(
                f"WikiText file not found: {path}; set the path to a text file such as wikitext-2/test.txt"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(f"WikiText file {path} is not UTF-8 text ({error.reason})") from None
    else:
        text = _from_hub(config)
    if not text.strip():
        raise DatasetError(f"WikiText source {config.path or config.hub_id} is empty; expected the test text")
    return text


def _from_hub(config: DictConfig) -> str:
    hub_config = config.get("hub_config")
    try:
        from datasets import load_dataset

        rows = load_dataset(config.hub_id, hub_config, split=config.split or "test")
    except Exception as error:
        raise DatasetError(
            f"cannot load WikiText '{config.hub_id}' ({hub_config}) from the Hugging Face hub "
            f"({type(error).__name__}); without network access set the path to a local test.txt"
        ) from error
    # Each hub row is one line of the original file, newline included.
    return "".join(rows["text"])


def split_articles(text: str) -> list[str]:
    """Articles in order; joined back together they give `text` exactly."""
    # Text before the first heading (the file opens with a blank line) belongs to the first article.
    starts = [0] + [match.start() for match in ARTICLE_HEADING.finditer(text)][1:]
    bounds = starts + [len(text)]
    return [text[begin:end] for begin, end in zip(bounds, bounds[1:]) if text[begin:end]]


def article_title(article: str) -> str:
    for line in article.splitlines():
        if line.strip():
            return line.strip().strip("=").strip()
    return ""


class WikiText2:
    name = "wikitext2"
    description = "WikiText-2 test text, one sample per article (local text file or the hub)"

    def load(self, config: DictConfig) -> list[Sample]:
        articles = split_articles(wikitext_text(config))
        samples = [
            Sample(id=f"article-{index}", text=article, meta={"title": article_title(article)})
            for index, article in enumerate(articles)
        ]
        if config.get("limit") is not None:
            samples = samples[: int(config.limit)]
        return samples
