"""The weight columns (weight_memory_gb, bits_per_weight, kernel) of layers quantbench can and
cannot see: torch.ao's packed layers are measured through weight(), an opaque layer leaves the
column null with one warning, and a backend's own figures stand."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

from quantbench.measure.memory import weight_memory_bytes
from quantbench.measure.weight_bits import bits_per_weight
from quantbench.measure.weight_facts import BACKEND_FIGURES, weight_metrics

HIDDEN, WIDE, VOCAB = 128, 256, 100


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(HIDDEN, WIDE)
        self.down = nn.Linear(WIDE, HIDDEN)


class Tiny(nn.Module):
    """Embeddings, two blocks of two linear layers (with biases), an output head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False)


class Opaque(nn.Module):
    """A linear layer whose weight lives where no tensor or weight() method shows it."""

    in_features, out_features = HIDDEN, WIDE

    def __init__(self):
        super().__init__()
        self._handle = object()


BLOCK_WEIGHTS = 2 * 2 * HIDDEN * WIDE
BIASES = 2 * (WIDE + HIDDEN)
OUTSIDE_BLOCKS = 2 * VOCAB * HIDDEN  # embeddings and head


def quantized(dtype: torch.dtype) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return torch.ao.quantization.quantize_dynamic(Tiny(), {nn.Linear}, dtype=dtype)


@pytest.mark.parametrize(("dtype", "bits"), [(torch.qint8, 8), (torch.float16, 16)])
def test_packed_dynamic_layers_are_measured_through_their_weight_method(dtype, bits):
    model = quantized(dtype)
    assert bits_per_weight(model) == bits  # float16 weights unpack as float32: sized as stored
    head_bytes = VOCAB * HIDDEN * bits // 8  # quantize_dynamic packs the head too
    assert weight_memory_bytes(model) == BLOCK_WEIGHTS * bits // 8 + 4 * BIASES + 4 * VOCAB * HIDDEN + head_bytes
    assert weight_metrics(model, {})["kernel"] == f"torch DynamicQuantizedLinear {str(dtype).removeprefix('torch.')}"


def test_the_float32_model_is_its_parameters():
    model = Tiny()
    assert bits_per_weight(model) == 32
    assert weight_memory_bytes(model) == 4 * (BLOCK_WEIGHTS + BIASES + OUTSIDE_BLOCKS)


def test_a_layer_quantbench_cannot_see_leaves_the_columns_null_with_one_warning_each(caplog):
    model = Tiny()
    model.layers[0].up = Opaque()
    with caplog.at_level(logging.WARNING, logger="quantbench"):
        metrics = weight_metrics(model, {})
    assert (metrics["weight_memory_gb"], metrics["bits_per_weight"]) == (None, None)  # never 0, never a part
    assert len(caplog.messages) == 2 and all("\n" not in message for message in caplog.messages)
    assert caplog.messages[1] == (
        "bits_per_weight left null: quantbench cannot see the weights of the linear layer layers.0.up (Opaque): "
        "no parameter, buffer, tensor attribute or weight() method holds them; the backend can report its own "
        "bits_per_weight in LoadedModel.metrics (docs/plugins.md)"
    )


def test_a_backends_own_figures_stand_and_silence_the_warning(caplog):
    model = Tiny()
    model.layers[0].up = Opaque()
    own = {"weight_memory_gb": 0.5, "bits_per_weight": 4.25, "kernel": "my-kernel"}
    with caplog.at_level(logging.WARNING, logger="quantbench"):
        assert weight_metrics(model, {**own, "other_column": 1}) == own
    assert caplog.messages == []
    assert set(BACKEND_FIGURES) == set(own)
