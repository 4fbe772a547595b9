"""A small batch-normalised VGG-style CNN for 28x28 digits: the suite's best from-scratch MNIST network.

Not a paper's network but the textbook combination of three of them — stacks of 3x3 convolutions (Simonyan &
Zisserman 2015), batch normalisation after every convolution (Ioffe & Szegedy 2015) and dropout before the classifier
(Srivastava et al. 2014) — sized so that five seeds of its recipe (``augment`` in ``cnnbench.training``: random
rotation, zoom and shift, a warm-up then cosine decay, 5,000 training images held out for validation) fit two CPU
cores. It is the network the suite's MNIST accuracy target (median >= 99.70 % over five seeds) is measured with.
"""

from __future__ import annotations

import keras
from keras import layers

from architectures._layers import check_args, classifier, feature_pooling
from architectures._registry import register


def _conv_bn_relu(x, filters: int, padding: str, name: str):
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register(
    "mnist_cnn",
    paper="this suite: 3x3 stacks (Simonyan & Zisserman, ICLR 2015) + batch norm (Ioffe & Szegedy, ICML 2015)",
    year=2015,
    innovations=("3x3 convolution stacks", "batch normalisation", "data augmentation in the recipe"),
    default_input_shape=(28, 28, 1),
    reference_params=171_818,
    param_convention="derived, no published figure: all weights, biases and batch-norm statistics at 28x28x1, 10 "
                     "classes",
)
def mnist_cnn(*, input_shape=(28, 28, 1), classes: int = 10, include_top: bool = True, pooling: str | None = None,
              width: float = 1.0, dropout: float = 0.3, classifier_activation: str | None = "softmax") -> keras.Model:
    """conv 32-32, max-pool, conv 64-64, max-pool, conv 128 (valid), dropout 0.3, dense: every conv 3x3 followed by
    batch norm and ReLU. 171,818 parameters at 28x28x1 and ``width=1``; ``width`` scales every layer's maps;
    ``include_top=False`` returns the last 5x5 feature map.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=12, name="mnist_cnn")
    w = lambda n: max(1, round(n * width))  # noqa: E731
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn_relu(inputs, w(32), "same", "block1a")
    x = _conv_bn_relu(x, w(32), "same", "block1b")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv_bn_relu(x, w(64), "same", "block2a")
    x = _conv_bn_relu(x, w(64), "same", "block2b")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv_bn_relu(x, w(128), "valid", "block3")
    if not include_top:
        return keras.Model(inputs, feature_pooling(x, pooling), name="mnist_cnn")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, classifier(x, classes, classifier_activation), name="mnist_cnn")
