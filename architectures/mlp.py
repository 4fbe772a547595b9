"""The fully connected baseline a CNN is measured against: a one-hidden-layer perceptron (Rumelhart, Hinton &
Williams 1986) sized to LeNet-5's parameter count, so the conv-vs-FC ablation compares architectures, not budgets.
"""

from __future__ import annotations

import keras
from keras import layers

from architectures._layers import check_args, classifier
from architectures._registry import register


@register(
    "mlp",
    paper="Rumelhart, Hinton & Williams, Learning representations by back-propagating errors, Nature 1986",
    year=1986,
    innovations=("fully connected layers trained by backpropagation (no weight sharing, no pooling)",),
    default_input_shape=(28, 28, 1),
    reference_params=62_020,
    param_convention="weights + biases; derived: 784-78-10, sized to LeNet-5's 61,706 (+0.5 %)",
)
def mlp(*, input_shape=(28, 28, 1), classes: int = 10, include_top: bool = True, pooling: str | None = None,
        hidden: int = 78, classifier_activation: str | None = "softmax") -> keras.Model:
    """A 784-78-10 perceptron with ReLU: 62,020 parameters, LeNet-5's 61,706 within 0.5 %. Every pixel has its own
    weight into every hidden unit, so nothing is shared across positions and nothing pools — what the conv-vs-FC
    ablation tests, on shifted test images too.
    """
    check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=None, min_size=1,
               name="mlp")
    inputs = keras.Input(input_shape, name="input")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    if include_top:
        x = classifier(x, classes, classifier_activation)
    return keras.Model(inputs, x, name="mlp")
