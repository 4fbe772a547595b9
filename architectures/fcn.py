"""Fully convolutional networks — Long, Shelhamer & Darrell, "Fully convolutional networks for semantic
segmentation", CVPR 2015.

Three ideas, each a function here:

* ``fully_convolutional`` — a classifier's dense layers are convolutions: the first Dense becomes a convolution
  whose kernel covers the whole feature map it read, each later Dense a 1x1 convolution, weights reshaped. The result
  computes the same function at the training resolution and, on a larger input, a map of class scores — the
  classifier slid over the image with the stride of its feature map.
* ``bilinear_kernel`` — in-network upsampling: a transposed convolution whose kernel is bilinear interpolation.
* ``fcn`` — the FCN-32s / 16s / 8s networks: a backbone decapitated and made fully convolutional, a 1x1 class-score
  layer on its stride-32 features, then upsampling fused with scores from the stride-16 and stride-8 features
  ("skips"). The same head on VGG16 (the paper's), ResNet and Xception, so a segmentation run compares backbones.
"""

from __future__ import annotations

import fnmatch

import keras
import numpy as np
from keras import layers

from architectures._layers import check_args, feature_pooling
from architectures._registry import create_model, register

PAPER = "Long, Shelhamer & Darrell, CVPR 2015"
INNOVATIONS = ("fully convolutional: dense layers as convolutions, any input size",
               "in-network upsampling (transposed convolution, bilinear)")
SKIP_INNOVATION = "skip connections fusing coarse semantics with fine appearance"
#: PASCAL VOC: 20 classes and background, the paper's task.
VOC_CLASSES = 21
#: per backbone, the layers whose outputs feed the stride-16 and stride-8 skips (``fnmatch`` patterns; the last
#: matching layer is used). VGG16's are the paper's pool4 and pool3; for the others the output of the last block at
#: that stride.
SKIP_LAYERS = {
    "vgg16": ("block4_pool", "block3_pool"),
    "*resnet*": ("conv4_block*_out", "conv3_block*_out"),
    "xception": ("block12_add", "block3_add"),
}


# --- dense → convolution --------------------------------------------------------------------------------------------

def fully_convolutional(model: keras.Model, *, input_shape=None, padding: str = "valid",
                        name: str | None = None) -> keras.Model:
    """The fully convolutional equivalent of a classifier whose head is ``Flatten`` then ``Dense`` layers.

    The layers before ``Flatten`` are rebuilt on an input of ``input_shape`` (default: any height and width) with the
    classifier's weights. The first Dense after ``Flatten`` becomes a ``Conv2D`` with the feature map's spatial size
    as its kernel (its weight matrix reshaped to ``(h, w, c, units)``: ``Flatten`` reads channels-last rows in that
    order); each later Dense becomes a 1x1 ``Conv2D``; weightless layers (dropout, activations) are kept. Layers keep
    their names.

    ``padding="valid"`` (default) is the exact equivalent: at the training resolution the output is the classifier's
    as a 1x1 map; on a larger input each position of the score map is the classifier applied to one window, the
    windows stepping by the feature map's stride. ``padding="same"`` keeps the score map at the feature map's size
    (the centre position equals the classifier's output at the training resolution) — what a segmentation head on a
    small input needs.
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    flatten = [i for i, layer in enumerate(model.layers) if isinstance(layer, layers.Flatten)]
    if len(flatten) != 1:
        raise ValueError(f"{model.name}: expected one Flatten layer starting a dense head, found {len(flatten)}")
    features = model.layers[flatten[0]].input
    kernel = tuple(features.shape[1:3])
    if None in kernel:
        raise ValueError(f"{model.name}: the feature map before Flatten must have a static size, got {kernel}")
    input_shape = tuple(input_shape or (None, None, model.input.shape[-1]))
    trunk = _rebuild(keras.Model(model.inputs[0], features), input_shape)
    x, previous, first = trunk.output, model.layers[flatten[0]], True
    for layer in model.layers[flatten[0] + 1:]:
        if layer.input is not previous.output:
            raise ValueError(f"{model.name}: the head must be a chain; {layer.name} does not read {previous.name}")
        if isinstance(layer, layers.Dense):
            w, b = [*layer.get_weights(), None][:2]
            size = kernel if first else (1, 1)
            conv = layers.Conv2D(layer.units, size, padding=padding if first else "valid", activation=layer.activation,
                                 use_bias=layer.use_bias, dtype=layer.dtype_policy, name=layer.name)
            x = conv(x)
            conv.set_weights([w.reshape(*size, -1, layer.units)] + ([b] if layer.use_bias else []))
            first = False
        elif layer.weights:
            raise ValueError(f"{model.name}: cannot convert head layer {layer.name} ({type(layer).__name__})")
        else:
            x = type(layer).from_config(layer.get_config())(x)
        previous = layer
    return keras.Model(trunk.inputs[0], x, name=name or f"{model.name}_fully_convolutional")


def _rebuild(model: keras.Model, input_shape) -> keras.Model:
    """``model``'s graph on a new input shape, with copies of its layers holding its weights."""
    clone = keras.models.clone_model(model, input_tensors=keras.Input(input_shape, name=model.inputs[0].name))
    for layer in clone.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return keras.Model(clone.inputs[0], clone.outputs[0], name=model.name)  # a single input, as the original


# --- bilinear upsampling --------------------------------------------------------------------------------------------

def bilinear_kernel(factor: int, channels: int) -> np.ndarray:
    """The ``(k, k, channels, channels)`` transposed-convolution kernel that upsamples each channel on its own by
    bilinear interpolation, ``k = 2 * factor - factor % 2`` (the reference FCN's ``upsample_filt``).

    With stride ``factor`` and ``'same'`` padding it reproduces half-pixel-centred bilinear resizing
    (``tf.image.resize``) away from the borders.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    size = 2 * factor - factor % 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(size) - centre) / factor
    kernel = np.zeros((size, size, channels, channels), np.float32)
    kernel[:, :, range(channels), range(channels)] = np.outer(taps, taps)[..., None]
    return kernel


def upsample(x, factor: int, *, trainable: bool, name: str):
    """``factor``x upsampling of ``x``: a transposed convolution initialised to bilinear interpolation, no bias."""
    channels = x.shape[-1]
    return layers.Conv2DTranspose(channels, 2 * factor - factor % 2, strides=factor, padding="same", use_bias=False,
                                  kernel_initializer=keras.initializers.Constant(bilinear_kernel(factor, channels)),
                                  trainable=trainable, name=name)(x)


def _fit(x, size, name: str):
    """Crop (bottom/right) or zero-pad ``x`` to ``size``: upsampled maps and skips differ by a row where the input
    size is not a multiple of the stride."""
    dh, dw = x.shape[1] - size[0], x.shape[2] - size[1]
    if dh > 0 or dw > 0:
        x = layers.Cropping2D(((0, max(dh, 0)), (0, max(dw, 0))), name=f"{name}_crop")(x)
    if dh < 0 or dw < 0:
        x = layers.ZeroPadding2D(((0, max(-dh, 0)), (0, max(-dw, 0))), name=f"{name}_pad")(x)
    return x


# --- FCN ------------------------------------------------------------------------------------------------------------

def _features(backbone: str, input_shape, width: float) -> keras.Model:
    """The backbone decapitated and made fully convolutional on ``input_shape``: its stride-32 features as output.

    A dense head (VGG) is converted at the backbone's own input size — fc6 keeps the 7x7 kernel it has at 224x224,
    with 'same' padding — and its last Dense (the ImageNet classifier) is discarded; a global-pooling head
    (ResNet, Xception) is cut off before the pooling.
    """
    classifier = create_model(backbone, width=width, classifier_activation=None)
    if any(isinstance(layer, layers.Flatten) for layer in classifier.layers):
        # cut before converting: a converted classifier layer would stay reachable from the kept graph's tensors
        # (their outbound nodes), its weights alive for as long as the FCN
        dense = [layer for layer in classifier.layers if isinstance(layer, layers.Dense)]
        head = keras.Model(classifier.inputs[0], dense[-1].input)
        return fully_convolutional(head, input_shape=input_shape, padding="same", name=f"{backbone}_fc")
    pooled = [layer for layer in classifier.layers if isinstance(layer, layers.GlobalAveragePooling2D)]
    trunk = keras.Model(classifier.inputs[0], pooled[-1].input)
    return _rebuild(trunk, input_shape)


def _skip(features: keras.Model, backbone: str, stride: int):
    patterns = next((v for k, v in SKIP_LAYERS.items() if fnmatch.fnmatch(backbone, k)), None)
    if patterns is None:
        raise ValueError(f"no skip layers known for backbone {backbone!r} (known: {', '.join(SKIP_LAYERS)})")
    pattern = patterns[{16: 0, 8: 1}[stride]]
    matched = [layer for layer in features.layers if fnmatch.fnmatch(layer.name, pattern)]
    if not matched:
        raise ValueError(f"{backbone}: no layer matches {pattern!r}")
    return matched[-1].output


def fcn(*, backbone: str = "vgg16", stride: int = 8, input_shape=(512, 512, 3), classes: int = VOC_CLASSES,
        include_top: bool = True, pooling: str | None = None, width: float = 1.0, learn_upsampling: bool = False,
        classifier_activation: str | None = "softmax", name: str | None = None) -> keras.Model:
    """FCN-32s / 16s / 8s (``stride``) on a registered backbone: per-pixel class scores at the input's resolution.

    The head, layer for layer as the reference Caffe models (``voc-fcn32s/16s/8s``): ``score_fr`` (1x1 conv on the
    stride-32 features); FCN-32s upsamples it 32x (``upscore``). FCN-16s upsamples it 2x (``upscore2``), adds
    ``score_pool4`` (1x1 conv on the stride-16 skip) — ``fuse_pool4`` — and upsamples 16x (``upscore16``). FCN-8s
    upsamples that fusion 2x (``upscore_pool4``), adds ``score_pool3`` (stride 8) and upsamples 8x (``upscore8``).
    Score layers start at zero (the paper's initialisation); every upsampling is a transposed convolution with a
    bilinear kernel and no bias, fixed as in the released models (``learn_upsampling=True``: the paper text's variant,
    whose 2x layers learn). Softmax over classes per pixel.

    On VGG16 this is the paper's network: fc6/fc7 (keras' names: ``fc1``/``fc2``) converted to 7x7 and 1x1
    convolutions with dropout 0.5, the ImageNet classifier (fc8, ``predictions``) discarded. FCN-8s has 134,362,751
    learnable parameters with 21 classes; the fixed bilinear kernels (127,008 weights) are non-trainable and not
    counted. Geometry differs from the Caffe model in
    one way: it pads conv1_1 by 100 and crops each fusion (offsets 5, 9, 31) so that fc6 can be 'valid' on any
    input; here fc6 is 'same' and the maps at stride s are the input's size / s, aligned by construction, so the
    input should be a multiple of 32 (other sizes are cropped or padded to fit). Same parameters, same function away
    from the borders.

    ``include_top=False`` returns the fully convolutional backbone's stride-32 features (``pooling`` as usual).
    ``width`` scales the backbone (and fc6/fc7) for reduced-width profiles.
    """
    name = name or f"fcn{stride}s_{backbone}"
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=32, name=name)
    if stride not in (8, 16, 32):
        raise ValueError(f"{name}: stride must be 32, 16 or 8, got {stride!r}")
    features = _features(backbone, input_shape, width)
    x = features.output
    if not include_top:
        return keras.Model(features.inputs[0], feature_pooling(x, pooling), name=name)
    x = layers.Conv2D(classes, 1, kernel_initializer="zeros", name="score_fr")(x)
    upscore = "upscore2"
    for skip_stride, skip in ((16, "pool4"), (8, "pool3")):
        if stride > skip_stride:
            break
        x = upsample(x, 2, trainable=learn_upsampling, name=upscore)
        score = layers.Conv2D(classes, 1, kernel_initializer="zeros", name=f"score_{skip}")(
            _skip(features, backbone, skip_stride))
        x = layers.Add(name=f"fuse_{skip}")([_fit(x, score.shape[1:3], upscore), score])
        upscore = f"upscore_{skip}"
    final = "upscore" if stride == 32 else f"upscore{stride}"
    x = _fit(upsample(x, stride, trainable=False, name=final), input_shape[:2], final)
    if classifier_activation:
        x = layers.Activation(classifier_activation, dtype="float32", name=f"score_{classifier_activation}")(x)
    return keras.Model(features.inputs[0], x, name=name)


def _register(stride: int, backbone: str, reference_params: int, convention: str):
    skips = {32: (), 16: ("pool4",), 8: ("pool4", "pool3")}[stride]
    return register(
        f"fcn{stride}s_{backbone}", paper=PAPER, year=2015,
        innovations=(*INNOVATIONS, SKIP_INNOVATION) if skips else INNOVATIONS,
        default_input_shape=(512, 512, 3), reference_params=reference_params, param_convention=convention,
        count="trainable", kind="segmentation",
        defaults={"backbone": backbone, "stride": stride, "classes": VOC_CLASSES},
        variant=f"FCN-{stride}s on {backbone}: " + (f"skips from {', '.join(skips)}; " if skips else "no skips; ")
        + "fixed bilinear upsampling; 'same' geometry (no pad-100 / crop), 21 classes at 512x512.",
    )


_VGG = ("learnable weights + biases, 21 classes; the fixed bilinear upsampling kernels not counted; derived from "
        "Long et al. 2015 (paper: '134M')")
_DERIVED = ("learnable weights + biases, 21 classes: the backbone's trainable convolutional part + the score layers; "
            "fixed bilinear kernels and BN statistics not counted; derived")

fcn32s_vgg16 = _register(32, "vgg16", 134_346_581, _VGG)(fcn)
fcn16s_vgg16 = _register(16, "vgg16", 134_357_354, _VGG)(fcn)
fcn8s_vgg16 = _register(8, "vgg16", 134_362_751, _VGG)(fcn)
fcn8s_resnet50 = _register(8, "resnet50", 23_609_919, _DERIVED)(fcn)
fcn8s_xception = _register(8, "xception", 20_870_687, _DERIVED)(fcn)
