"""Assemble backbone + head into one flat classifier, choose what trains, find where to cut.

The cut is the graph position the activation cache stores: everything below it is frozen,
so its output is a fixed function of the image and can be computed once per sweep. Inside a residual
block the trained part reads two tensors (`core.models.frontier`); `cut` stays the highest single tensor
below them, which a fold ensemble shares and a sweep's lowest cut is taken at.
"""
from __future__ import annotations

import collections
import weakref
from dataclasses import dataclass
from functools import lru_cache

import keras
import numpy as np

from core.models.backbones import POOL_LAYER, backbone_layers, build_feature_extractor
from core.models.frontier import JOIN, frontier, from_reads, to_reads
from core.models.heads import build_head
from core.spec.sweep import TrialParams


@dataclass
class Classifier:
    """A flat Keras model from raw RGB pixels (0..255) to class probabilities."""

    model: keras.Model
    trainable: list[str]   # backbone layers that train in this trial
    cut: str               # the highest single-tensor position below the trained part
    reads: str = ""        # what the trained part reads and the activation cache holds: the cut, or the
    #                        frontier inside a residual block (`core.models.frontier`; "" = the cut)

    def __post_init__(self) -> None:
        self.reads = self.reads or self.cut

    def top_model(self) -> keras.Model:
        """The layers above what the cache holds as their own model, sharing weights with `model`."""
        return from_reads(self.model, self.reads, self.model.output, name="top")

    def bottom_model(self, cut: str | None = None) -> keras.Model:
        """Input up to what the cache holds (or another single-tensor position): the frozen part."""
        return to_reads(self.model, self.model.input, cut or self.reads, name="bottom")

    def segment_model(self, lower: str) -> keras.Model:
        """From a lower cut up to what this one reads: turns a lower cache entry into this trial's."""
        return to_reads(self.model, self.model.get_layer(lower).output, self.reads, name="segment")

    def lies_below(self, name: str) -> bool:
        """Is `name` a layer below what this classifier reads (and not all it reads)?"""
        order = [layer.name for layer in self.model.layers]
        return name in order and name != self.reads and order.index(name) < max(
            order.index(read) for read in self.reads.split(JOIN))

    @property
    def cacheable(self) -> bool:
        return not any(isinstance(self.model.get_layer(read), keras.layers.InputLayer)
                       for read in self.reads.split(JOIN))

    def frozen_view(self) -> "Classifier":
        """The same model (same layers, same head) cut as a frozen-backbone trial: stage 1 of staged
        fine-tuning trains this view's top, the head alone, on the cache at the pooled features."""
        return Classifier(model=self.model, trainable=[], cut=_cut_below(self.model, _above_pool(self.model)))


_PRETRAINED_RATES: "weakref.WeakKeyDictionary[keras.layers.Layer, float]" = weakref.WeakKeyDictionary()


@dataclass
class _Extractor:
    model: keras.Model
    initial_weights: list[np.ndarray]


@lru_cache(maxsize=4)
def _extractor(backbone: str, image_size: int, weights: str, seed: int, policy: str) -> _Extractor:
    """One backbone per process, configuration and dtype policy (a process that changes the policy, as
    bench/quality.py --precisions does, gets a backbone built in it); trials reset its weights."""
    keras.utils.set_random_seed(seed)
    model = build_feature_extractor(backbone, image_size, weights=None if weights == "none" else weights)
    return _Extractor(model, model.get_weights())


def build_classifier(params: TrialParams, num_classes: int, seed: int = 0, head_seed: int | None = None
                     ) -> Classifier:
    """Fresh head, backbone reset to its pretrained weights, the last N backbone layers trainable.

    The trained part starts at the first trainable layer that has weights (a trainable ReLU or Add changes
    nothing) and reads the tensors crossing there (`frontier`); the cut is the highest single-tensor position
    below it. Below what it reads the backbone runs as in inference, stochastic-depth dropout included, so
    its output is a fixed function of the image.
    `seed` fixes the backbone (it matters for random weights), `head_seed` the head's init.
    """
    extractor = _extractor(params.backbone, params.image_size, params.weights, seed,
                           keras.mixed_precision.global_policy().name)
    extractor.model.set_weights(extractor.initial_weights)
    keras.utils.set_random_seed(seed if head_seed is None else head_seed)
    outputs = build_head(extractor.model.output, num_classes, params)
    model = keras.Model(extractor.model.input, outputs, name=f"{params.backbone}_classifier")
    backbone = backbone_layers(extractor.model)
    count = min(params.trainable_layers, len(backbone))
    trainable = {layer.name for layer in backbone[len(backbone) - count:]} if count else set()
    for layer in extractor.model.layers:
        layer.trainable = layer.name in trainable
    order = [layer.name for layer in model.layers]
    learning = [order.index(layer.name) for layer in backbone if layer.name in trainable and layer.weights]
    first = min(learning, default=_above_pool(model))
    cut, reads = _cut_below(model, first), frontier(model, first)
    _freeze_dropout_below(backbone, order, max(order.index(read) for read in reads.split(JOIN)))
    return Classifier(model=model, trainable=[n for n in order if n in trainable], cut=cut, reads=reads)


def _above_pool(model: keras.Model) -> int:
    """Index of the first layer above the pooled features: where a frozen backbone's trainable part begins."""
    return [layer.name for layer in model.layers].index(POOL_LAYER) + 1


def _cut_below(model: keras.Model, first: int) -> str:
    """The highest cut point below the layer at index `first`."""
    order = [layer.name for layer in model.layers]
    return [name for name in cut_points(model) if order.index(name) < first][-1]


def _freeze_dropout_below(backbone: list[keras.layers.Layer], order: list[str], cut_index: int) -> None:
    """Dropout layers up to what the trained part reads are off (rate 0), those above keep their own rate."""
    for layer in backbone:
        if isinstance(layer, keras.layers.Dropout):
            own = _PRETRAINED_RATES.setdefault(layer, layer.rate)
            layer.rate = 0.0 if order.index(layer.name) <= cut_index else own


def cut_points(model: keras.Model) -> list[str]:
    """Layers whose single output is the only tensor crossing from below to above them.

    In a residual network most positions have two live tensors (the skip and the branch);
    only block outputs qualify. The input layer counts, so the list is never empty.
    """
    layers = model.layers
    index = {layer.name: i for i, layer in enumerate(layers)}
    last_use = dict(index)
    for layer in layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                source = tensor._keras_history.operation.name
                if source in index and layer.name in index:
                    last_use[source] = max(last_use[source], index[layer.name])
    ends = collections.Counter(last_use.values())
    crossing, points = 0, []
    for i, layer in enumerate(layers):
        crossing += 1 - ends[i]
        if crossing == 1 and last_use[layer.name] > i:
            points.append(layer.name)
    return points
