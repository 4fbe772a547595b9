"""Seeded random CNNs that are not in the registry: the memory predictors' generalisation test bed.

A predictor tuned on twenty registered networks can be right for the wrong reasons; these networks have shapes it
was never fitted to. ``random_network(seed)`` draws, from one ``random.Random(seed)``: an input of 17-160 px with 1 or
3 channels, a batch of 1-64, 2-8 blocks — plain, strided or separable convolutions (kernels 1, 3, 5, 7), residual
additions (identity or 1x1 projection), inception-like concatenations of two branches — each block with or without
batch norm, one of six activations, dropout and max or average pooling, then a head (global average pooling or
flatten, an optional hidden dense layer). Only standard Keras layers, so the network saves to a ``.keras`` file and
the measurement loads it in a fresh process like any user's model. The same seed gives the same network.
"""

from __future__ import annotations

import random

import keras
from keras import layers

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "swish")
BATCHES = (1, 2, 4, 8, 16, 32, 64)
#: largest activation (elements per batch) a generated network may hold: keeps one train step within ~1 GB
MAX_ELEMENTS = 2**23


def random_network(seed: int) -> tuple[keras.Model, dict]:
    """The network drawn for ``seed`` and what was drawn: ``{"seed", "input_shape", "batch_size", "blocks"}`` (one
    short description per block)."""
    rng = random.Random(seed)
    size, channels = rng.randint(17, 160), rng.choice((1, 3))
    batch = rng.choice(BATCHES)
    inputs = keras.Input((size, size, channels), name="input")
    x, described = inputs, []

    def cap(width: int) -> int:  # narrower where the map is large and the batch big
        h, w = x.shape[1], x.shape[2]
        return max(2, min(width, MAX_ELEMENTS // max(1, batch * h * w)))

    def norm_act(y, tag: list[str]):
        if rng.random() < 0.5:
            y = layers.BatchNormalization()(y)
            tag.append("bn")
        activation = rng.choice(ACTIVATIONS)
        tag.append(activation)
        return layers.Activation(activation)(y)

    for _ in range(rng.randint(2, 8)):
        kind = rng.choices(("conv", "separable", "residual", "concat"), weights=(4, 2, 2, 1))[0]
        width, kernel = cap(rng.choice((4, 8, 16, 24, 32, 48, 64, 96, 128))), rng.choice((1, 3, 3, 3, 5, 7))
        small = min(x.shape[1], x.shape[2]) < 8
        stride = 1 if small or rng.random() < 0.7 else 2
        tag = [f"{kind} {kernel}x{kernel}/{stride} {width}"]
        if kind == "conv":
            x = norm_act(layers.Conv2D(width, kernel, strides=stride, padding="same")(x), tag)
        elif kind == "separable":
            x = norm_act(layers.SeparableConv2D(width, kernel, strides=stride, padding="same")(x), tag)
        elif kind == "residual":  # two convs and a shortcut: identity when shapes agree, else a 1x1 projection
            y = norm_act(layers.Conv2D(width, kernel, strides=stride, padding="same")(x), tag)
            y = layers.Conv2D(width, kernel, padding="same")(y)
            shortcut = x
            if stride != 1 or x.shape[-1] != width:
                shortcut = layers.Conv2D(width, 1, strides=stride, padding="same")(x)
                tag.append("projection")
            x = norm_act(layers.Add()([y, shortcut]), tag)
        else:  # two branches side by side, as in an inception module
            a = layers.Conv2D(width, 1, strides=stride, padding="same", activation="relu")(x)
            b = layers.Conv2D(width, kernel, strides=stride, padding="same", activation="relu")(x)
            x = norm_act(layers.Concatenate()([a, b]), tag)
        if rng.random() < 0.25:
            x = layers.Dropout(rng.choice((0.1, 0.25, 0.5)))(x)
            tag.append("dropout")
        if min(x.shape[1], x.shape[2]) >= 4 and rng.random() < 0.4:
            pool = rng.choice(("max", "avg"))
            x = (layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D)(2)(x)
            tag.append(f"{pool}-pool")
        described.append(" ".join(tag))
    flatten = x.shape[1] * x.shape[2] * x.shape[3] <= 4096 and rng.random() < 0.5
    x = layers.Flatten()(x) if flatten else layers.GlobalAveragePooling2D()(x)
    head = ["flatten" if flatten else "gap"]
    if rng.random() < 0.5:
        hidden = rng.choice((32, 64, 128, 256))
        x = layers.Dense(hidden, activation="relu")(x)
        head.append(f"dense {hidden}")
    outputs = layers.Dense(rng.choice((2, 10, 100)), activation="softmax")(x)
    described.append(" ".join([*head, f"dense {outputs.shape[-1]}"]))
    model = keras.Model(inputs, outputs, name=f"random_{seed}")
    return model, {"seed": seed, "input_shape": [size, size, channels], "batch_size": batch, "blocks": described}
