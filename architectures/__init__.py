"""Faithful Keras reimplementations of the classic CNNs, one module per family, all behind one registry.

Importing this package imports every family module, which registers its models.
"""

from architectures import (  # noqa: F401  (registers)
    alexnet,
    efficientnet_lite,
    fcn,
    googlenet,
    lenet,
    mlp,
    mnist_cnn,
    resnet,
    vgg,
    xception,
)
from architectures._registry import ModelInfo, create_model, list_models, model_info, register

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register"]
