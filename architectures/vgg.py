"""VGG — Simonyan & Zisserman, "Very deep convolutional networks for large-scale image recognition", ICLR 2015.

The 16-layer configuration D: the backbone of the FCN segmentation networks (``architectures.fcn``).
"""

from __future__ import annotations

import keras
from keras import layers

from architectures._layers import check_args, classifier, feature_pooling, scaled
from architectures._registry import register

#: configuration D: convolutions per block and their width.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


@register(
    "vgg16",
    paper="Simonyan & Zisserman, ICLR 2015",
    year=2014,
    innovations=("depth from stacked 3x3 convolutions", "uniform conv-pool blocks"),
    default_input_shape=(224, 224, 3),
    reference_params=138_357_544,
    param_convention="weights + biases (keras.applications.VGG16 and torchvision agree)",
    reference_gmacs=15.47,
    gmacs_source="torchvision VGG16_Weights (15.47 GFLOPS, counted as MACs)",
    keras_equivalent="VGG16",
)
def vgg16(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
          width: float = 1.0, classifier_activation: str | None = "softmax") -> keras.Model:
    """VGG-16 (configuration D): thirteen 3x3 'same' convolutions in five blocks, each block closed by a 2x2 max
    pool, then fc1/fc2 (4096, ReLU, dropout 0.5) and the classifier; 224x224 input, 138,357,544 parameters.

    Layer names are keras.applications.VGG16's (block{b}_conv{i}, block{b}_pool, fc1, fc2, predictions), so its
    ImageNet weights copy over by name. The paper's dropout after fc1/fc2 is included (keras' VGG16 omits it; no
    weights). ``width`` scales every layer (reduced-width profiles).
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=32, name="vgg16")
    inputs = x = keras.Input(input_shape, name="input")
    for block, (convs, filters) in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(scaled(filters, width), 3, padding="same", activation="relu",
                              name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for name in ("fc1", "fc2"):
            x = layers.Dense(scaled(4096, width), activation="relu", name=name)(x)
            x = layers.Dropout(0.5, name=f"{name}_dropout")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name="vgg16")
