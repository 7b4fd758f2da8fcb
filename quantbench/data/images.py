"""Image + prompt datasets for multimodal models.

- `images`: a local folder of images and a JSONL file of prompts, one object a line:
  `{"image": "cat.jpg", "prompt": "answer en what animal is this?", "answer": "cat"}`
  (`answer` and `id` are optional; `image` is relative to `dataset.image_dir`, by default the
  JSONL file's folder, or absolute).
- `synthetic-images`: coloured shapes on a plain background drawn with Pillow, for tests and
  for speed studies where image content does not matter. The answer (the shape's colour) is
  known, so a real model's answers can still be scored.

Every image is checked when the dataset loads, so a bad file fails the job in a second with a
message naming it, before any model is loaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.data.base import Sample, expand_path
from quantbench.errors import DatasetError

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from PIL import Image

# Named colours the synthetic shapes are drawn in; the name is the sample's answer.
SHAPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 170),
    "orange": (250, 140, 20),
    "black": (10, 10, 10),
    "white": (250, 250, 250),
}
SHAPES = ("rectangle", "ellipse")
BACKGROUND_GREY = (128, 128, 128)


def _unreadable(path: Path, error: BaseException, where: str = "") -> DatasetError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return DatasetError(
        f"image file {path}{where} is not a readable image ({reason}); expected a PNG, JPEG or other "
        "format Pillow reads: replace the file or remove its prompt"
    )


def check_image_file(path: Path, where: str = "") -> None:
    """Fail with a DatasetError naming `path` unless it exists and its header is a valid image."""
    from PIL import Image

    if not path.is_file():
        raise DatasetError(f"image file not found: {path}{where}; check dataset.image_dir and the JSONL's image paths")
    try:
        with Image.open(path) as image:
            image.verify()  # reads the structure without decoding every pixel
    except Exception as error:  # Pillow raises OSError, SyntaxError or ValueError for bad files
        raise _unreadable(path, error, where) from None


def open_image(image: Any) -> Image.Image:
    """An RGB image from a path or a PIL image, fully decoded; DatasetError naming a bad file."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise DatasetError(f"image file not found: {path}; check the dataset's image paths")
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")  # decodes every pixel, so a truncated file fails here
    except Exception as error:
        raise _unreadable(path, error) from None


def _record(entry: Any, line_number: int, jsonl: Path, image_dir: Path) -> Sample:
    where = f"{jsonl}, line {line_number}"
    if not isinstance(entry, dict):
        raise DatasetError(
            f'{where}: expected a JSON object like {{"image": "a.png", "prompt": "..."}}, got {type(entry).__name__}'
        )
    missing = [key for key in ("image", "prompt") if not isinstance(entry.get(key), str) or not entry.get(key)]
    if missing:
        raise DatasetError(
            f'{where}: missing or empty {", ".join(missing)}; every line needs "image" and "prompt" strings'
        )
    image_path = Path(entry["image"]).expanduser()
    if not image_path.is_absolute():
        image_path = image_dir / image_path
    check_image_file(image_path, f" (named on line {line_number} of {jsonl})")
    answer = entry.get("answer")
    return Sample(
        id=str(entry.get("id", f"{jsonl.stem}-{line_number}")),
        text=entry["prompt"],
        image=str(image_path),
        answer=None if answer is None else str(answer),
        meta={"image_file": str(image_path)},
    )


class ImageFolder:
    name = "images"
    description = "a local folder of images with a JSONL of prompts (and answers when known)"

    def load(self, config: DictConfig) -> list[Sample]:
        if not config.path:
            raise DatasetError(
                f"dataset '{config.name}' needs a JSONL file of prompts: set dataset.path=FILE.jsonl "
                '(one {"image": ..., "prompt": ..., "answer": ...} object a line)'
            )
        jsonl = expand_path(config.path)
        if not jsonl.is_file():
            raise DatasetError(f"prompts file not found: {jsonl}; set dataset.path to a JSONL file")
        image_dir = expand_path(config.image_dir) if config.get("image_dir") else jsonl.parent
        limit = None if config.limit is None else int(config.limit)
        samples: list[Sample] = []
        with open(jsonl, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if limit is not None and len(samples) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(
                        f"{jsonl}, line {line_number}: not valid JSON ({error.msg}); expected one object a line"
                    ) from None
                samples.append(_record(entry, line_number, jsonl, image_dir))
        if not samples:
            raise DatasetError(f"prompts file {jsonl} has no prompts; expected one JSON object a line")
        return samples


def synthetic_image(rng: random.Random, size_px: int) -> tuple[Image.Image, str]:
    """One shape in a random named colour at a random place; returns the image and the colour name."""
    from PIL import Image, ImageDraw

    colour = rng.choice(sorted(SHAPE_COLOURS))
    image = Image.new("RGB", (size_px, size_px), BACKGROUND_GREY)
    # The shape covers a quarter to three quarters of each side, so it is clearly visible.
    width = rng.randint(size_px // 4, 3 * size_px // 4)
    height = rng.randint(size_px // 4, 3 * size_px // 4)
    left = rng.randint(0, size_px - width)
    top = rng.randint(0, size_px - height)
    box = (left, top, left + width - 1, top + height - 1)
    draw = ImageDraw.Draw(image)
    if rng.choice(SHAPES) == "rectangle":
        draw.rectangle(box, fill=SHAPE_COLOURS[colour])
    else:
        draw.ellipse(box, fill=SHAPE_COLOURS[colour])
    return image, colour


class SyntheticImages:
    name = "synthetic-images"
    description = "coloured shapes drawn with Pillow (answer: the colour), for tests and speed studies"

    def load(self, config: DictConfig) -> list[Sample]:
        count = int(config.num_samples)
        if config.limit is not None:
            count = min(count, int(config.limit))
        size_px = int(config.image_size)
        if count < 1 or size_px < 8:
            raise DatasetError(
                f"dataset '{config.name}': num_samples={config.num_samples}, image_size={size_px}; "
                "expected at least 1 sample of at least 8 pixels a side"
            )
        rng = random.Random(int(config.seed))  # the same images on every machine
        samples = []
        for index in range(count):
            image, colour = synthetic_image(rng, size_px)
            samples.append(
                Sample(
                    id=f"synthetic-{index}",
                    text=str(config.prompt),
                    image=image,
                    answer=colour,
                    meta={"colour": colour},
                )
            )
        return samples
