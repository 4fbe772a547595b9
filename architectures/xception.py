"""Xception — Chollet, "Xception: deep learning with depthwise separable convolutions", CVPR 2017
(arXiv:1610.02357)."""

from __future__ import annotations

import keras
from keras import layers

from architectures._layers import check_args, classifier, feature_pooling, scaled
from architectures._registry import register


def _sepconv_bn(x, filters, name, relu_first=True):
    if relu_first:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def _downsampling_block(x, filters, block, relu_first=True):
    """Entry/exit flow block: two separable convs, 3x3/2 max pool, plus a strided 1x1 conv shortcut."""
    f1, f2 = filters
    shortcut = layers.Conv2D(f2, 1, strides=2, padding="same", use_bias=False, name=f"block{block}_shortcut_conv")(x)
    shortcut = layers.BatchNormalization(name=f"block{block}_shortcut_bn")(shortcut)
    x = _sepconv_bn(x, f1, f"block{block}_sepconv1", relu_first=relu_first)
    x = _sepconv_bn(x, f2, f"block{block}_sepconv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(x)
    return layers.Add(name=f"block{block}_add")([x, shortcut])


@register(
    "xception",
    paper="Chollet, Xception, CVPR 2017, arXiv:1610.02357",
    year=2016,
    innovations=("depthwise-separable convolutions throughout (Inception taken to its extreme)",
                 "residual shortcuts around separable-conv blocks (from ResNet)"),
    default_input_shape=(299, 299, 3),
    reference_params=22_910_480,
    param_convention="all weights incl. BN moving statistics (keras.applications; 22,855,952 trainable)",
    reference_gmacs=8.4,
    gmacs_source="timm benchmark CSV (legacy_xception; 35.83 M activations)",
    keras_equivalent="Xception",
)
def xception(*, input_shape=(299, 299, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
             width: float = 1.0, dropout: float = 0.5, classifier_activation: str | None = "softmax") -> keras.Model:
    """Xception as in the paper's Fig. 5 and keras.applications: entry flow (two convs, three separable blocks with
    strided 1x1 shortcuts), middle flow (8 x three 728-wide separable convs with identity shortcuts), exit flow
    (separable block to 1024, separable convs 1536 and 2048, global average pooling). Batch norm after every conv,
    no conv biases; dropout 0.5 before the logistic-regression layer (§4.3; ``dropout=0`` gives keras.applications'
    layout, which has none); the paper's optional FC layers are not used, as in keras. 22,910,480 parameters incl.
    BN statistics either way, with keras.applications.Xception's block output shapes. ``width`` scales every layer.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=71, name="xception")
    w = lambda n: scaled(n, width)  # noqa: E731
    inputs = keras.Input(input_shape, name="input")
    # Entry flow.
    x = layers.Conv2D(w(32), 3, strides=2, use_bias=False, name="block1_conv1")(inputs)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(w(64), 3, use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    x = _downsampling_block(x, (w(128), w(128)), 2, relu_first=False)  # block1 already ends in a ReLU
    x = _downsampling_block(x, (w(256), w(256)), 3)
    x = _downsampling_block(x, (w(728), w(728)), 4)
    # Middle flow: 8 identical residual blocks.
    for block in range(5, 13):
        shortcut = x
        for i in (1, 2, 3):
            x = _sepconv_bn(x, w(728), f"block{block}_sepconv{i}")
        x = layers.Add(name=f"block{block}_add")([x, shortcut])
    # Exit flow.
    x = _downsampling_block(x, (w(728), w(1024)), 13)
    for i, filters in ((1, 1536), (2, 2048)):
        x = layers.SeparableConv2D(w(filters), 3, padding="same", use_bias=False, name=f"block14_sepconv{i}")(x)
        x = layers.BatchNormalization(name=f"block14_sepconv{i}_bn")(x)
        x = layers.Activation("relu", name=f"block14_sepconv{i}_act")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name="xception")
