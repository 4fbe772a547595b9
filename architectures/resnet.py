"""ResNet v1 — He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016 (arXiv:1512.03385),
and SE-ResNet — Hu, Shen & Sun, "Squeeze-and-excitation networks", CVPR 2018 (arXiv:1709.01507).

One ``_resnet`` builder; the variants differ only in block counts, block type, and an optional squeeze-excitation
hook on the residual branch. Two conventions, because the two reference counts differ in what they count:

* ``"keras"`` — keras.applications: conv biases, BN epsilon 1.001e-5, the stride on the first 1x1 conv of a stage's
  first bottleneck (the paper's original Caffe placement). Its reference counts include BN moving statistics.
* ``"torchvision"`` — no conv biases, BN epsilon 1e-5, the stride on the 3x3 conv ("ResNet v1.5"). Its reference
  counts are the trainable weights only (BN moving statistics are buffers in PyTorch).
* ``"senet"`` — the SE authors' model (Caffe; ported as pretrainedmodels' and timm's ``legacy_seresnet50``): no conv
  biases, BN epsilon 1e-5, the stride on the first 1x1 as in the original ResNet. Counted like torchvision.

``zero_init_residual=True`` (torchvision's option; Goyal et al. 2017, arXiv:1706.02677, §5.1) starts the last batch
norm of every residual branch at gamma = 0, so each block starts as its shortcut: an initialisation, not a change of
topology or parameter count. Off by default, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from architectures._layers import ChannelPad, check_args, classifier, feature_pooling, scaled
from architectures._registry import register

RESNET_PAPER = "He, Zhang, Ren & Sun, CVPR 2016, arXiv:1512.03385"
SE_PAPER = "Hu, Shen & Sun, Squeeze-and-excitation networks, CVPR 2018, arXiv:1709.01507"
# Batch normalisation (Ioffe & Szegedy 2015) is used after every convolution, not introduced here.
RESIDUAL = ("residual (identity shortcut) connections", "bottleneck blocks (50+)")


@dataclass(frozen=True)
class Convention:
    use_bias: bool
    bn_epsilon: float
    stride_on_1x1: bool


CONVENTIONS = {
    "keras": Convention(use_bias=True, bn_epsilon=1.001e-5, stride_on_1x1=True),
    "torchvision": Convention(use_bias=False, bn_epsilon=1e-5, stride_on_1x1=False),
    "senet": Convention(use_bias=False, bn_epsilon=1e-5, stride_on_1x1=True),
}


def squeeze_excitation(x, ratio: int, name: str):
    """SE hook: global average pool → FC C/r, ReLU → FC C, sigmoid → rescale the channels (Hu et al., Fig. 3)."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = layers.Conv2D(max(1, channels // ratio), 1, activation="relu", name=f"{name}_se_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def _block(x, filters, stride, *, bottleneck, conv: Convention, se_ratio, zero_init_residual, name):
    """One residual block; ``name`` like ``conv3_block1`` (keras.applications layer names)."""

    def conv_bn(t, f, k, s, part, relu, gamma="ones"):
        t = layers.Conv2D(f, k, strides=s, padding="same", use_bias=conv.use_bias, name=f"{name}_{part}_conv")(t)
        t = layers.BatchNormalization(epsilon=conv.bn_epsilon, gamma_initializer=gamma, name=f"{name}_{part}_bn")(t)
        return layers.Activation("relu", name=f"{name}_{part}_relu")(t) if relu else t

    last_gamma = "zeros" if zero_init_residual else "ones"

    out_channels = filters * 4 if bottleneck else filters
    projection = stride != 1 or x.shape[-1] != out_channels  # option B: project only where the shape changes
    shortcut = conv_bn(x, out_channels, 1, stride, "0", relu=False) if projection else x
    if bottleneck:
        s1, s3 = (stride, 1) if conv.stride_on_1x1 else (1, stride)
        y = conv_bn(x, filters, 1, s1, "1", relu=True)
        y = conv_bn(y, filters, 3, s3, "2", relu=True)
        y = conv_bn(y, out_channels, 1, 1, "3", relu=False, gamma=last_gamma)
    else:
        y = conv_bn(x, filters, 3, stride, "1", relu=True)
        y = conv_bn(y, filters, 3, 1, "2", relu=False, gamma=last_gamma)
    if se_ratio:
        y = squeeze_excitation(y, se_ratio, name)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _resnet(*, block_counts, bottleneck, convention, se_ratio=None, input_shape, classes, include_top, pooling,
            width, classifier_activation, name, zero_init_residual=False):
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=32, name=name)
    if convention not in CONVENTIONS:
        raise ValueError(f"{name}: convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    conv = CONVENTIONS[convention]
    inputs = keras.Input(input_shape, name="input")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(scaled(64, width), 7, strides=2, use_bias=conv.use_bias, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=conv.bn_epsilon, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, blocks in enumerate(block_counts):
        filters = scaled(64 * 2**stage, width)
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            x = _block(x, filters, stride, bottleneck=bottleneck, conv=conv, se_ratio=se_ratio,
                       zero_init_residual=zero_init_residual, name=f"conv{stage + 2}_block{b + 1}")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)


_TV = "trainable weights only, no conv biases, BN statistics not counted (torchvision)"
_KERAS = "all weights incl. conv biases and BN moving statistics (keras.applications)"


def _register(name=None, *, year=2015, paper=RESNET_PAPER, innovations=RESIDUAL, **kwargs):
    return register(name, paper=paper, year=year, innovations=innovations, default_input_shape=(224, 224, 3),
                    **kwargs)


@_register(reference_params=11_689_512, param_convention=_TV, count="trainable", reference_gmacs=1.814,
           gmacs_source="torchvision weights metadata (timm: 1.82)")
def resnet18(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
             convention: str = "torchvision", width: float = 1.0,
             zero_init_residual: bool = False, classifier_activation: str | None = "softmax"):
    """ResNet-18 v1 (paper Table 1): basic blocks (3x3, 3x3) 2-2-2-2; torchvision convention, 11,689,512 trainable.

    Stages, strides and shortcuts as in every ResNet here; ``width`` scales every stage.
    """
    return _resnet(block_counts=(2, 2, 2, 2), bottleneck=False, convention=convention, input_shape=input_shape,
                   classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="resnet18",
                   zero_init_residual=zero_init_residual)


@_register(reference_params=21_797_672, param_convention=_TV, count="trainable", reference_gmacs=3.664,
           gmacs_source="torchvision weights metadata")
def resnet34(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
             convention: str = "torchvision", width: float = 1.0,
             zero_init_residual: bool = False, classifier_activation: str | None = "softmax"):
    """ResNet-34 v1 (paper Table 1): basic blocks (3x3, 3x3) 3-4-6-3; torchvision convention, 21,797,672 trainable."""
    return _resnet(block_counts=(3, 4, 6, 3), bottleneck=False, convention=convention, input_shape=input_shape,
                   classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="resnet34",
                   zero_init_residual=zero_init_residual)


@_register(reference_params=25_636_712, param_convention=_KERAS, keras_equivalent="ResNet50")
@_register("resnet50_tv", reference_params=25_557_032, param_convention=_TV, count="trainable",
           reference_gmacs=4.089, gmacs_source="torchvision weights metadata (timm's benchmark CSV lists 4.11)",
           variant="ResNet-50 v1.5 in the torchvision convention: bottleneck blocks 3-4-6-3, stride on the 3x3, no "
                   "conv biases; 25,557,032 trainable.",
           defaults={"convention": "torchvision"})
def resnet50(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
             convention: str = "keras", width: float = 1.0,
             zero_init_residual: bool = False, classifier_activation: str | None = "softmax"):
    """ResNet-50 v1 (paper Table 1): bottleneck blocks (1x1, 3x3, 1x1) 3-4-6-3 in the keras.applications convention —
    stride on the first 1x1, conv biases; 25,636,712 parameters incl. BN statistics, and the same layer names and
    stage shapes as keras.applications.ResNet50.
    """
    return _resnet(block_counts=(3, 4, 6, 3), bottleneck=True, convention=convention, input_shape=input_shape,
                   classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="resnet50",
                   zero_init_residual=zero_init_residual)


@_register(reference_params=44_707_176, param_convention=_KERAS, keras_equivalent="ResNet101")
def resnet101(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
              convention: str = "keras", width: float = 1.0,
              zero_init_residual: bool = False, classifier_activation: str | None = "softmax"):
    """ResNet-101 v1 (paper Table 1): bottleneck blocks 3-4-23-3, keras.applications convention (44,707,176)."""
    return _resnet(block_counts=(3, 4, 23, 3), bottleneck=True, convention=convention, input_shape=input_shape,
                   classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="resnet101",
                   zero_init_residual=zero_init_residual)


@_register(reference_params=60_419_944, param_convention=_KERAS, keras_equivalent="ResNet152")
def resnet152(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
              convention: str = "keras", width: float = 1.0,
              zero_init_residual: bool = False, classifier_activation: str | None = "softmax"):
    """ResNet-152 v1 (paper Table 1): bottleneck blocks 3-8-36-3, keras.applications convention (60,419,944)."""
    return _resnet(block_counts=(3, 8, 36, 3), bottleneck=True, convention=convention, input_shape=input_shape,
                   classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="resnet152",
                   zero_init_residual=zero_init_residual)


@_register(paper=SE_PAPER, year=2017, innovations=("squeeze-and-excitation channel attention", *RESIDUAL),
           reference_params=28_088_024, param_convention=_TV + "; timm legacy_seresnet50 28.09M", count="trainable",
           reference_gmacs=3.87, gmacs_precision=0.015,
           gmacs_source="the SE paper's Table 2 (3.87 GFLOPs, multiply-adds): ResNet-50's 3.86 + the SE blocks, whose "
                        "pooling and rescaling (0.011 G, element-wise) it counts and our MACs (convs + FCs, 3.8605) "
                        "leave in other_flops; hence +-0.015")
def seresnet50(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True,
               pooling: str | None = None, convention: str = "senet", width: float = 1.0,
               se_ratio: int = 16, zero_init_residual: bool = False,
               classifier_activation: str | None = "softmax"):
    """SE-ResNet-50: the ResNet-50 bottleneck with a squeeze-excitation hook (reduction 16) on the residual branch,
    before the addition (Hu et al. 2018, Fig. 3), as the authors' model: the stride on the first 1x1 (3.87 GMACs, the
    paper's Table 2 "3.87 GFLOPs"); ``convention="torchvision"`` puts it on the 3x3 (v1.5, 4.11 GMACs). 28,088,024
    trainable parameters either way.
    """
    return _resnet(block_counts=(3, 4, 6, 3), bottleneck=True, convention=convention, se_ratio=se_ratio,
                   input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling, width=width,
                   classifier_activation=classifier_activation, name="seresnet50",
                   zero_init_residual=zero_init_residual)


# --- He et al. §4.2: the CIFAR-10 family (6n+2 layers), with the switches the ablations turn -------------------

CIFAR_INNOVATIONS = ("residual (identity shortcut) connections", "the degradation problem shown on plain nets")


def _cifar_resnet(*, n: int, residual: bool, se_ratio: int | None, separable: bool, input_shape, classes,
                  include_top, pooling, width, classifier_activation, name):
    """3 stages of ``n`` basic blocks on 32x32 maps of 16/32/64 filters (x ``width``), stride 2 entering stages 2
    and 3, option-A shortcuts (subsampling + zero channels, no parameters), global average pooling, a 10-way FC."""
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=8, name=name)
    conv = layers.SeparableConv2D if separable else layers.Conv2D

    def conv_bn(t, f, s, part, relu):
        t = conv(f, 3, strides=s, padding="same", use_bias=False, name=f"{part}_conv")(t)
        t = layers.BatchNormalization(name=f"{part}_bn")(t)
        return layers.Activation("relu", name=f"{part}_relu")(t) if relu else t

    inputs = keras.Input(input_shape, name="input")
    x = conv_bn(inputs, scaled(16, width), 1, "conv1", relu=True)
    for stage in range(3):
        filters = scaled(16 * 2**stage, width)
        for b in range(n):
            stride, block = (2 if stage and b == 0 else 1), f"stage{stage + 1}_block{b + 1}"
            y = conv_bn(x, filters, stride, f"{block}_1", relu=True)
            y = conv_bn(y, filters, 1, f"{block}_2", relu=False)
            if se_ratio:
                y = squeeze_excitation(y, se_ratio, block)
            if residual:
                shortcut = x
                if stride != 1:
                    shortcut = layers.MaxPooling2D(1, strides=2, name=f"{block}_subsample")(shortcut)
                if shortcut.shape[-1] != filters:
                    shortcut = ChannelPad(filters, name=f"{block}_pad")(shortcut)
                y = layers.Add(name=f"{block}_add")([shortcut, y])
            x = layers.Activation("relu", name=f"{block}_out")(y)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)


_CIFAR = ("trainable weights, no conv biases, BN statistics not counted; derived (the paper's Table 6 gives {} M, "
          "rounded)")


@register("resnet20_cifar", paper=RESNET_PAPER + ", §4.2", year=2015, innovations=CIFAR_INNOVATIONS,
          default_input_shape=(32, 32, 3), reference_params=269_722, param_convention=_CIFAR.format("0.27"),
          count="trainable")
def resnet20_cifar(*, input_shape=(32, 32, 3), classes: int = 10, include_top: bool = True, pooling: str | None = None,
                   residual: bool = True, se_ratio: int | None = None, separable: bool = False, width: float = 1.0,
                   classifier_activation: str | None = "softmax"):
    """ResNet-20 for CIFAR-10 (He et al. §4.2, n = 3: 6n + 2 = 20 layers): basic blocks on 16/32/64 filters at
    32/16/8 px, option-A shortcuts. Ablation switches, each off by default: ``residual=False`` is the paper's plain
    net of the same depth; ``se_ratio=16`` adds squeeze-excitation (Hu et al.); ``separable=True`` makes every 3x3 a
    depthwise-separable convolution at the same width (Chollet).
    """
    return _cifar_resnet(n=3, residual=residual, se_ratio=se_ratio, separable=separable, input_shape=input_shape,
                         classes=classes, include_top=include_top, pooling=pooling, width=width,
                         classifier_activation=classifier_activation, name="resnet20_cifar")


@register("resnet56_cifar", paper=RESNET_PAPER + ", §4.2", year=2015, innovations=CIFAR_INNOVATIONS,
          default_input_shape=(32, 32, 3), reference_params=853_018, param_convention=_CIFAR.format("0.85"),
          count="trainable")
def resnet56_cifar(*, input_shape=(32, 32, 3), classes: int = 10, include_top: bool = True, pooling: str | None = None,
                   residual: bool = True, se_ratio: int | None = None, separable: bool = False, width: float = 1.0,
                   classifier_activation: str | None = "softmax"):
    """ResNet-56 for CIFAR-10 (He et al. §4.2, n = 9): as ``resnet20_cifar`` with 9 blocks per stage; with
    ``residual=False`` the 56-layer plain net whose higher training error is the paper's degradation problem (Fig. 6).
    """
    return _cifar_resnet(n=9, residual=residual, se_ratio=se_ratio, separable=separable, input_shape=input_shape,
                         classes=classes, include_top=include_top, pooling=pooling, width=width,
                         classifier_activation=classifier_activation, name="resnet56_cifar")
