"""Building blocks shared by several families: argument checks and the keras.applications-style head."""

from __future__ import annotations

import keras
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



@keras.saving.register_keras_serializable("cnnbench")
class LocalResponseNormalization(layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012, §3.3): ``tf.nn.lrn`` on TensorFlow, the
    same sum of squares as a difference of cumulative sums on Keras' other backends (JAX, PyTorch).

    b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2) ** beta.

    ``alpha`` here is the paper's: it multiplies the plain sum of squares, exactly like TF's per-element ``alpha``
    (``depth_radius = n // 2``, ``bias = k``). Caffe's LRN divides its alpha by n, so a Caffe model's ``alpha`` maps to
    ``alpha / n`` here; ``caffe_alpha`` does that conversion.
    """

    def __init__(self, k: float = 2.0, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        if n < 1 or n % 2 == 0:
            raise ValueError(f"LRN window n must be a positive odd number, got {n}")
        self.k, self.n, self.alpha, self.beta = k, n, alpha, beta

    @classmethod
    def caffe(cls, *, local_size: int, alpha: float, beta: float, k: float = 1.0, **kwargs):
        """The layer Caffe's ``LRN`` with these settings computes (its alpha is averaged over the window)."""
        return cls(k=k, n=local_size, alpha=alpha / local_size, beta=beta, **kwargs)

    def call(self, x):
        ops, r = keras.ops, self.n // 2
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            y = tf.nn.local_response_normalization(ops.cast(x, "float32"), depth_radius=r, bias=self.k,
                                                   alpha=self.alpha, beta=self.beta)
            return ops.cast(y, x.dtype)
        a = ops.cast(x, "float32")
        cs = ops.cumsum(ops.pad(ops.square(a), [(0, 0)] * (len(a.shape) - 1) + [(r + 1, r)]), axis=-1)
        window = cs[..., self.n:] - cs[..., :-self.n]  # sum of a_j^2 for j in [i - r, i + r]
        return ops.cast(a / ops.power(self.k + self.alpha * window, self.beta), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "k": self.k, "n": self.n, "alpha": self.alpha, "beta": self.beta}


def scaled(n: int, width: float, divisor: int = 1) -> int:
    """A layer width times the width multiplier (reduced-width profiles), rounded to a multiple of ``divisor``."""
    return max(divisor, round(n * width / divisor) * divisor)


@keras.saving.register_keras_serializable("cnnbench")
class ChannelPad(layers.Layer):
    """Zero-pads the channel axis to ``channels``: the parameter-free shortcut of He et al.'s CIFAR ResNets (option
    A), after a stride-2 subsampling."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        extra = self.channels - x.shape[-1]
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return super().get_config() | {"channels": self.channels}
