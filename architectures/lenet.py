"""LeNet-5 — LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 86(11), 1998.

Two variants of one topology (C1 conv 6@5x5 → S2 → C3 conv 16@5x5 → S4 → C5 conv 120@5x5 → F6 84 → output):

* ``lenet5`` — the modern variant used in today's tutorials and model summaries;
* ``lenet5_1998`` — the paper's network, with its C3 connection table, trainable subsampling, scaled tanh and the
  Euclidean RBF output layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from architectures._layers import check_args, classifier, feature_pooling
from architectures._registry import register

PAPER = "LeCun, Bottou, Bengio & Haffner, Proc. IEEE 86(11):2278-2324, 1998"


@register(
    "lenet5",
    paper=PAPER,
    year=1998,
    innovations=("convolution + subsampling stack trained end to end by backprop", "weight sharing"),
    default_input_shape=(28, 28, 1),
    reference_params=61_706,
    param_convention="all weights and biases (Keras/PyTorch model summaries of modern LeNet-5)",
)
def lenet5(
    *,
    input_shape=(28, 28, 1),
    classes: int = 10,
    include_top: bool = True,
    pooling: str | None = None,
    width: float = 1.0,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """Modern LeNet-5: 28x28 input with a same-padded C1 (equivalent to the paper's 32x32 input), ReLU, max pooling.

    With ``width=1`` it has 61,706 parameters at 28x28x1. ``width`` scales every layer's maps/units (reduced-width
    profiles); ``include_top=False`` returns the C5 feature map.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=16, name="lenet5")
    w = lambda n: max(1, round(n * width))  # noqa: E731
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(w(6), 5, padding="same", activation="relu", name="c1")(inputs)
    x = layers.MaxPooling2D(2, name="s2")(x)
    x = layers.Conv2D(w(16), 5, activation="relu", name="c3")(x)
    x = layers.MaxPooling2D(2, name="s4")(x)
    x = layers.Conv2D(w(120), 5, activation="relu", name="c5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(w(84), activation="relu", name="f6")(x)
        x = classifier(x, classes, classifier_activation, name="output")
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name="lenet5")


# --- the 1998 network -------------------------------------------------------------------------------------------

#: Table I of the paper: which S2 maps (rows) feed each C3 map (columns).
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

#: The RBF centres: 7x12 bitmaps of the digits, +1 ink / -1 paper, drawn after Fig. 3 of the paper.
DIGIT_BITMAPS = (
    (" ##### ", "##   ##", "##   ##", "##  ###", "## # ##", "## # ##", "### ###", "##   ##", "##   ##", "##   ##",
     " ##### ", "       "),
    ("   ##  ", "  ###  ", " ####  ", "   ##  ", "   ##  ", "   ##  ", "   ##  ", "   ##  ", "   ##  ", "   ##  ",
     " ######", "       "),
    (" ##### ", "##   ##", "     ##", "     ##", "    ## ", "   ##  ", "  ##   ", " ##    ", "##     ", "##     ",
     "#######", "       "),
    (" ##### ", "##   ##", "     ##", "     ##", "  #### ", "     ##", "     ##", "     ##", "     ##", "##   ##",
     " ##### ", "       "),
    ("    ## ", "   ### ", "  #### ", " ## ## ", "##  ## ", "##  ## ", "#######", "    ## ", "    ## ", "    ## ",
     "    ## ", "       "),
    ("#######", "##     ", "##     ", "##     ", "###### ", "     ##", "     ##", "     ##", "     ##", "##   ##",
     " ##### ", "       "),
    ("  #### ", " ##    ", "##     ", "##     ", "###### ", "##   ##", "##   ##", "##   ##", "##   ##", "##   ##",
     " ##### ", "       "),
    ("#######", "     ##", "     ##", "    ## ", "    ## ", "   ##  ", "   ##  ", "  ##   ", "  ##   ", "  ##   ",
     "  ##   ", "       "),
    (" ##### ", "##   ##", "##   ##", "##   ##", " ##### ", "##   ##", "##   ##", "##   ##", "##   ##", "##   ##",
     " ##### ", "       "),
    (" ##### ", "##   ##", "##   ##", "##   ##", "##   ##", " ######", "     ##", "     ##", "     ##", "    ## ",
     " ####  ", "       "),
)


@keras.saving.register_keras_serializable("cnnbench")
def scaled_tanh(x):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""
    return 1.7159 * ops.tanh(2.0 / 3.0 * x)


@keras.saving.register_keras_serializable("cnnbench")
class Subsampling(layers.Layer):
    """S2/S4: the sum of each 2x2 window times a trainable coefficient plus a trainable bias, per map, squashed."""

    def build(self, input_shape):
        c = input_shape[-1]
        self.coefficient = self.add_weight(shape=(c,), initializer="ones", name="coefficient")
        self.bias = self.add_weight(shape=(c,), initializer="zeros", name="bias")

    def call(self, x):
        window_sum = ops.average_pool(x, 2, 2) * 4.0
        return scaled_tanh(window_sum * self.coefficient + self.bias)

    def macs_per_image(self, inputs, outputs):
        """One multiply by the coefficient per output (the window sum is additions)."""
        return math.prod(outputs[0].shape[1:])


@keras.saving.register_keras_serializable("cnnbench")
class PartialConv2D(layers.Layer):
    """C3: a 5x5 valid convolution where output map j sees only the input maps ``table[j]``.

    Only the connected kernels are weights (60 kernels of 5x5 + 16 biases = 1,516 parameters); they are scattered
    into a dense kernel with zeros elsewhere before the convolution.
    """

    def __init__(self, table=C3_TABLE, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.table = tuple(tuple(t) for t in table)
        self.kernel_size = kernel_size

    def build(self, input_shape):
        n_in, n_out = input_shape[-1], len(self.table)
        n_conn = sum(len(t) for t in self.table)
        # index[i, j] = which stored kernel connects input i to output j, or n_conn (a zero slot) if none.
        index = np.full((n_in, n_out), n_conn, dtype="int32")
        k = 0
        for j, inputs in enumerate(self.table):
            for i in inputs:
                index[i, j], k = k, k + 1
        self.index = index
        self.kernel = self.add_weight(shape=(self.kernel_size, self.kernel_size, n_conn), name="kernel",
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(n_out,), initializer="zeros", name="bias")

    def call(self, x):
        padded = ops.concatenate([self.kernel, ops.zeros_like(self.kernel[..., :1])], axis=-1)
        dense_kernel = ops.take(padded, self.index, axis=-1)  # (k, k, n_in, n_out)
        return ops.conv(x, dense_kernel, padding="valid") + self.bias

    def macs_per_image(self, inputs, outputs):
        """The connections only, as the paper counts them (the dense kernel TF runs also multiplies the zeros)."""
        h, w = outputs[0].shape[1:3]
        return h * w * self.kernel_size**2 * sum(len(t) for t in self.table)

    def get_config(self):
        return {**super().get_config(), "table": self.table, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable("cnnbench")
class EuclideanRBF(layers.Layer):
    """Output layer: y_i = sum_j (x_j - w_ij)^2 with fixed centres w_i (the digit bitmaps); returns -y as logits."""

    def __init__(self, centres, **kwargs):
        super().__init__(**kwargs)
        self.centres_init = np.asarray(centres, dtype="float32")

    def build(self, input_shape):
        self.centres = self.add_weight(shape=self.centres_init.shape, trainable=False, name="centres",
                                       initializer=keras.initializers.Constant(self.centres_init))

    def call(self, x):
        diff = ops.expand_dims(x, 1) - self.centres  # (batch, classes, 84)
        return -ops.sum(ops.square(diff), axis=-1)

    def macs_per_image(self, inputs, outputs):
        """A subtract-square-accumulate per centre element."""
        return int(self.centres_init.size)

    def get_config(self):
        return {**super().get_config(), "centres": self.centres_init.tolist()}


def digit_centres() -> np.ndarray:
    """The ten 84-dim RBF centres (+1 ink, -1 paper), one row per digit."""
    return np.array([[1.0 if ch == "#" else -1.0 for row in bmp for ch in row] for bmp in DIGIT_BITMAPS])


@register(
    "lenet5_1998",
    paper=PAPER,
    year=1998,
    innovations=("convolution + subsampling stack trained end to end by backprop", "sparse C3 connection table",
                 "RBF output with fixed class codes"),
    default_input_shape=(32, 32, 1),
    reference_params=60_840,
    param_convention="60,000 trainable (C1..F6, paper) + 840 fixed RBF centres",
)
def lenet5_1998(
    *,
    input_shape=(32, 32, 1),
    classes: int = 10,
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """LeNet-5 as in the 1998 paper: 32x32 input, C3 partial connections (Table I), trainable subsampling, RBF output.

    Pixels in [0, 1] (background 0) are mapped to the paper's input range, background −0.1 and ink 1.175 ("mean
    roughly 0, variance roughly 1", §II.B), by the first layer (``input_range``, no weights).

    Faithful in topology and count (60,000 trainable + 840 fixed RBF parameters, Fig. 2). Deviations, stated: Keras'
    Glorot initialisation instead of U(±2.4/F_in); the RBF centres are our 7x12 digit bitmaps drawn after Fig. 3;
    the RBF penalties are negated into logits and trained with softmax cross-entropy, which is the paper's MAP
    criterion (eq. 9) without the constant j.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=32, name="lenet5_1998")
    if include_top and classes != 10:
        raise ValueError(f"lenet5_1998: the RBF output codes are the ten digits, so classes must be 10, got {classes}")
    inputs = keras.Input(input_shape, name="input")
    x = layers.Rescaling(1.275, offset=-0.1, name="input_range")(inputs)
    x = layers.Conv2D(6, 5, activation=scaled_tanh, name="c1")(x)
    x = Subsampling(name="s2")(x)
    x = layers.Activation(scaled_tanh, name="c3_squash")(PartialConv2D(name="c3")(x))
    x = Subsampling(name="s4")(x)
    x = layers.Conv2D(120, 5, activation=scaled_tanh, name="c5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(84, activation=scaled_tanh, name="f6")(x)
        x = EuclideanRBF(digit_centres(), name="output_rbf")(x)
        if classifier_activation:
            x = layers.Activation(classifier_activation, dtype="float32", name=f"output_{classifier_activation}")(x)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name="lenet5_1998")
