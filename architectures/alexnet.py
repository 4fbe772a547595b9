"""AlexNet — Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural networks",
NIPS 2012.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from architectures._layers import LocalResponseNormalization, check_args, classifier, feature_pooling, scaled
from architectures._registry import register

PAPER = "Krizhevsky, Sutskever & Hinton, NIPS 2012"
# What the paper introduced; ReLU (Nair & Hinton 2010) and dropout (Hinton et al. 2012) it adopted, at ImageNet scale.
INNOVATIONS = ("local response normalisation", "overlapping max pooling",
               "two-GPU model parallelism (grouped convolutions)",
               "ReLU and dropout in a large CNN (adopted from Nair & Hinton 2010; Hinton et al. 2012)")


NORMALIZATIONS = ("lrn", "batch", None)
DOWNSAMPLES = ("max", "conv")


@keras.saving.register_keras_serializable("cnnbench")
class TowerConv2D(layers.Conv2D):
    """A grouped ``Conv2D`` computed as the paper's GPUs did: each tower's half of the maps convolved with its half of
    the kernel, the outputs concatenated. The same weights (one grouped kernel), output and count as ``Conv2D(groups=
    g)``; TensorFlow's CPU kernel for a grouped convolution is about ten times slower than the towers apart (a train
    step of AlexNet's conv2 at 7x7x48, batch 128, on two AVX2 cores: 771 ms grouped, 68 ms as towers)."""

    def convolution_op(self, inputs, kernel):
        if self.groups == 1 or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        towers = zip(ops.split(inputs, self.groups, axis=-1), ops.split(kernel, self.groups, axis=-1), strict=True)
        return ops.concatenate([super(TowerConv2D, self).convolution_op(x, k) for x, k in towers], axis=-1)


def _alexnet(*, towers: int, input_shape, classes, include_top, pooling, width, classifier_activation, name,
             activation="relu", normalization="lrn", pool_size=3, dropout=0.5, downsample="max"):
    """The 2012 network; the keywords after ``name`` are the ablations' switches, the paper's choice by default."""
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=67, name=name)
    if normalization not in NORMALIZATIONS or downsample not in DOWNSAMPLES or pool_size not in (2, 3):
        raise ValueError(f"{name}: normalization in {NORMALIZATIONS}, downsample in {DOWNSAMPLES}, pool_size 2 or 3; "
                         f"got {normalization!r}, {downsample!r}, {pool_size!r}")
    w = lambda n: scaled(n, width, divisor=towers)  # noqa: E731

    def conv(x, filters, kernel, stage, strides=1, padding="same", groups=1):
        return (TowerConv2D if groups > 1 else layers.Conv2D)(
            w(filters), kernel, strides=strides, padding=padding, groups=groups, activation=activation,
            name=f"conv{stage}")(x)

    def norm(x, stage):
        if normalization == "lrn":
            return LocalResponseNormalization(k=2, n=5, alpha=1e-4, beta=0.75, name=f"conv{stage}_lrn")(x)
        return layers.BatchNormalization(name=f"conv{stage}_bn")(x) if normalization == "batch" else x

    def pool(x, stage):  # overlapping 3/2 (the paper), non-overlapping 2/2, or a learnt stride-2 3x3 convolution
        if downsample == "conv":
            return layers.Conv2D(x.shape[-1], pool_size, strides=2, activation=activation, name=f"pool{stage}_conv")(x)
        return layers.MaxPooling2D(pool_size, strides=2, name=f"pool{stage}")(x)

    inputs = keras.Input(input_shape, name="input")
    x = conv(inputs, 96, 11, 1, strides=4, padding="valid")  # 227 → 55
    x = pool(norm(x, 1), 1)  # overlapping: 3x3 windows, stride 2 → 27
    x = conv(x, 256, 5, 2, groups=towers)
    x = pool(norm(x, 2), 2)  # → 13
    x = conv(x, 384, 3, 3)  # conv3 sees both towers
    x = conv(x, 384, 3, 4, groups=towers)
    x = conv(x, 256, 3, 5, groups=towers)
    x = pool(x, 5)  # → 6
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(w(4096), activation=activation, name="fc6")(x)
        x = layers.Dropout(dropout, name="fc6_dropout")(x)
        x = layers.Dense(w(4096), activation=activation, name="fc7")(x)
        x = layers.Dropout(dropout, name="fc7_dropout")(x)
        x = classifier(x, classes, classifier_activation, name="fc8")
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)


@register(
    "alexnet",
    paper=PAPER,
    year=2012,
    innovations=INNOVATIONS,
    default_input_shape=(227, 227, 3),
    reference_params=60_965_224,
    param_convention="weights + biases, two towers (conv2/4/5 grouped in 2); derived from the paper, Fig. 2",
    reference_gmacs=0.72,
    gmacs_source="derived from the paper's Fig. 2 (convs 0.666 + FCs 0.059). Not torchvision's 0.714: its AlexNet "
                 "is the 'One weird trick' variant (Krizhevsky 2014, 64/192/384/256/256 maps), neither 2012 model here",
)
def alexnet(*, input_shape=(227, 227, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
            width: float = 1.0, classifier_activation: str | None = "softmax", activation: str = "relu",
            normalization: str | None = "lrn", pool_size: int = 3, dropout: float = 0.5,
            downsample: str = "max") -> keras.Model:
    """AlexNet as in the 2012 paper: two towers, i.e. conv2, conv4 and conv5 see only their own GPU's half (grouped
    convolutions, groups=2), conv3 and the FC layers see both.

    227x227 input (the paper's "224" does not tile with an 11x11/4 valid conv), ReLU, LRN after conv1 and conv2
    (k=2, n=5, alpha=1e-4, beta=0.75), overlapping max pooling 3/2, dropout 0.5 in fc6/fc7. 60,965,224 parameters.
    ``width`` scales every layer (reduced-width profiles). The ablations' switches, the paper's choice by default:
    ``activation`` ("relu"; "tanh"), ``normalization`` ("lrn"; "batch", None), ``pool_size`` (3: overlapping 3/2;
    2: non-overlapping 2/2), ``dropout`` (0.5; 0), ``downsample`` ("max"; "conv": a learnt stride-2 convolution).
    """
    return _alexnet(towers=2, input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                    width=width, classifier_activation=classifier_activation, name="alexnet", activation=activation,
                    normalization=normalization, pool_size=pool_size, dropout=dropout, downsample=downsample)


@register(
    "alexnet_one_tower",
    paper=PAPER,
    year=2012,
    innovations=INNOVATIONS,
    default_input_shape=(227, 227, 3),
    reference_params=62_378_344,
    param_convention="weights + biases, the paper's widths in one tower (no groups); derived",
)
def alexnet_one_tower(*, input_shape=(227, 227, 3), classes: int = 1000, include_top: bool = True,
                      pooling: str | None = None, width: float = 1.0,
                      classifier_activation: str | None = "softmax", activation: str = "relu",
                      normalization: str | None = "lrn", pool_size: int = 3, dropout: float = 0.5,
                      downsample: str = "max") -> keras.Model:
    """AlexNet with the 2012 paper's channel widths (96/256/384/384/256) in a single tower: every conv sees all maps.

    Otherwise identical to ``alexnet`` (LRN, overlapping pooling, dropout, 227x227, the same ablation switches).
    62,378,344 parameters.
    """
    return _alexnet(towers=1, input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                    width=width, classifier_activation=classifier_activation, name="alexnet_one_tower",
                    activation=activation, normalization=normalization, pool_size=pool_size, dropout=dropout,
                    downsample=downsample)
