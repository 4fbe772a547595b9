"""A first analytic memory model: what training or inference must hold at once, in bytes.

train: weights + gradients + optimizer slots (Adam: 2 per weight) + every layer's output kept for backprop + the
input batch. infer: weights + the two largest consecutive activations + the input batch. float32 throughout.
"""

from __future__ import annotations

import itertools
import math

import keras

BYTES = 4  # float32


def _layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def activation_elements(model: keras.Model) -> list[int]:
    """Elements per image of each layer's output(s), in layer order."""
    sizes = []
    for layer in _layers(model):
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        sizes.append(sum(math.prod(d for d in o.shape[1:] if d is not None) for o in outputs))
    return sizes


def predict_memory(model: keras.Model, *, batch_size: int, input_shape, mode: str = "train",
                   optimizer_slots: int = 2) -> dict:
    weights = sum(math.prod(w.shape) for w in model.weights) * BYTES
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights) * BYTES
    acts = activation_elements(model)
    inputs = batch_size * math.prod(input_shape) * BYTES
    if mode == "train":
        breakdown = {"weights": weights, "gradients": trainable, "optimizer_slots": optimizer_slots * trainable,
                     "activations": batch_size * sum(acts) * BYTES, "input_batch": inputs}
    elif mode == "infer":
        pairs = [a + b for a, b in itertools.pairwise(acts)] or acts
        breakdown = {"weights": weights, "activations": batch_size * max(pairs, default=0) * BYTES,
                     "input_batch": inputs}
    else:
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    return {"mode": mode, "batch_size": batch_size, "predicted_bytes": sum(breakdown.values()),
            "breakdown": breakdown}
