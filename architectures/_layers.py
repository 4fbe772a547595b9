"""Building blocks shared by several families: argument checks and the keras.applications-style head."""

from __future__ import annotations

from keras import layers

POOLINGS = (None, "avg", "max")


def check_args(*, input_shape, classes: int, include_top: bool, pooling, min_size: int, name: str) -> tuple:
    """Validate builder arguments the way keras.applications does: a ``ValueError`` naming the bad value."""
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, channels), got {input_shape!r}")
    h, w, c = input_shape
    if h is not None and w is not None and min(h, w) < min_size:
        raise ValueError(f"{name}: input must be at least {min_size}x{min_size}, got {h}x{w}")
    if not c or c < 1:
        raise ValueError(f"{name}: channels must be >= 1, got {c!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"{name}: classes must be a positive int with include_top=True, got {classes!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"{name}: pooling must be one of {POOLINGS}, got {pooling!r}")
    return tuple(input_shape)


def feature_pooling(x, pooling):
    """``include_top=False`` head: nothing, global average or global max pooling (keras.applications semantics)."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classifier(x, classes: int, activation: str | None, name: str = "predictions"):
    """Final dense layer; the activation runs in float32 so mixed precision keeps a stable softmax."""
    x = layers.Dense(classes, name=name)(x)
    return layers.Activation(activation, dtype="float32", name=f"{name}_{activation}")(x) if activation else x

