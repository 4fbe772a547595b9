"""FCN: dense → conv conversion, bilinear upsampling, the FCN-32s/16s/8s networks and their heads on other backbones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from architectures import create_model, list_models, model_info
from architectures.fcn import bilinear_kernel, fully_convolutional
from cnnbench.measure.params import count_params


def _valid_classifier(seed=0):
    """A small classifier with only 'valid' convolutions and pooling (so every window is exact), Flatten/Dense head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)  # 14
    x = keras.layers.MaxPooling2D(2)(x)  # 7, stride 2
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)  # 5
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12, activation="relu", name="fc_a")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(3, activation="softmax", name="fc_b")(x)
    return keras.Model(inputs, x)


def test_conversion_is_the_same_function_at_the_training_resolution():
    model = _valid_classifier()
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    converted = fully_convolutional(model)
    assert [type(layer).__name__ for layer in converted.layers[-3:]] == ["Conv2D", "Dropout", "Conv2D"]
    assert converted.get_layer("fc_a").kernel_size == (5, 5) and converted.get_layer("fc_b").kernel_size == (1, 1)
    assert count_params(converted) == count_params(model)
    y = converted(x, training=False).numpy()
    assert y.shape == (4, 1, 1, 3)
    np.testing.assert_allclose(y[:, 0, 0], model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


def test_conversion_slides_the_classifier_over_a_larger_input():
    model = _valid_classifier()
    big = np.random.default_rng(1).random((2, 30, 24, 1), dtype=np.float32)
    scores = fully_convolutional(model)(big, training=False).numpy()
    assert scores.shape == (2, 8, 5, 3)  # (30 - 16) / 2 + 1, (24 - 16) / 2 + 1: windows at the feature stride 2
    for i, j in [(0, 0), (3, 2), (7, 4)]:
        window = big[:, 2 * i:2 * i + 16, 2 * j:2 * j + 16]
        np.testing.assert_allclose(scores[:, i, j], model(window, training=False).numpy(), rtol=1e-5, atol=1e-6)


def test_same_padding_keeps_the_map_and_its_centre_is_the_classifier():
    model = create_model("vgg16", input_shape=(64, 64, 3), width=1 / 16, classes=5)
    x = np.random.default_rng(2).random((2, 64, 64, 3), dtype=np.float32)
    converted = fully_convolutional(model, input_shape=(64, 64, 3), padding="same")
    y = converted(x, training=False).numpy()
    assert y.shape == (2, 2, 2, 5)  # 2x2 fc6 kernel on a 2x2 map: 'same' pads right/bottom, (0, 0) sees it whole
    np.testing.assert_allclose(y[:, 0, 0], model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


def test_conversion_refuses_heads_it_cannot_convert():
    resnet = create_model("resnet18", input_shape=(32, 32, 3), width=0.125)
    with pytest.raises(ValueError, match="Flatten"):
        fully_convolutional(resnet)


def test_bilinear_kernel_is_the_reference_filter():
    np.testing.assert_allclose(bilinear_kernel(2, 1)[:, :, 0, 0],
                               np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    k3 = bilinear_kernel(3, 2)  # odd factor: 5 taps centred on the middle one
    np.testing.assert_allclose(k3[2, :, 0, 0], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-6)
    assert k3.shape == (5, 5, 2, 2) and not k3[:, :, 0, 1].any()  # channels upsampled on their own


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_upsampling_equals_bilinear_resize_inside_the_borders(factor):
    from architectures.fcn import upsample

    inputs = keras.Input((6, 5, 3))
    model = keras.Model(inputs, upsample(inputs, factor, trainable=False, name="up"))
    x = np.random.default_rng(factor).random((2, 6, 5, 3), dtype=np.float32)
    y = model(x).numpy()
    resized = tf.image.resize(x, (6 * factor, 5 * factor), method="bilinear").numpy()
    assert y.shape == resized.shape
    inner = np.s_[:, factor:-factor, factor:-factor]
    np.testing.assert_allclose(y[inner], resized[inner], atol=1e-5)
    assert not model.trainable_weights  # fixed, as in the released FCN models


@pytest.mark.parametrize(("name", "learnable"), [("fcn32s_vgg16", 134_346_581), ("fcn16s_vgg16", 134_357_354),
                                                 ("fcn8s_vgg16", 134_362_751)])
def test_fcn_vgg16_learnable_parameters(name, learnable, paper_model):
    model = paper_model(name)
    counts = count_params(model)
    assert counts["trainable"] == learnable == model_info(name).reference_params
    fixed = {"fcn32s_vgg16": 64 * 64, "fcn16s_vgg16": 4 * 4 + 32 * 32, "fcn8s_vgg16": 4 * 4 + 4 * 4 + 16 * 16}[name]
    assert counts["non_trainable"] == fixed * 21 * 21  # the bilinear kernels: class-to-class, not counted
    assert model.get_layer("fc1").kernel.shape == (7, 7, 512, 4096)  # fc6 as the paper's 7x7 convolution


@pytest.mark.parametrize("name", ["fcn8s_resnet50", "fcn8s_xception"])
def test_fcn_heads_on_other_backbones_add_only_score_layers(name, paper_model):
    backbone = model_info(name).defaults["backbone"]
    model, features = paper_model(name), create_model(backbone, include_top=False)
    channels = [model.get_layer(f"score_{s}").input.shape[-1] for s in ("fr", "pool4", "pool3")]
    assert channels == {"fcn8s_resnet50": [2048, 1024, 512], "fcn8s_xception": [2048, 728, 256]}[name]
    scores = sum((c + 1) * 21 for c in channels)
    assert count_params(model)["trainable"] == count_params(features)["trainable"] + scores
    assert model.get_layer("score_pool3").input.shape[1:3] == (64, 64)  # stride 8 of 512


def test_fcn8s_fuses_at_strides_16_and_8_and_outputs_every_pixel():
    model = create_model("fcn8s_vgg16", input_shape=(96, 96, 3), width=1 / 16, classes=4)
    shapes = {n: tuple(model.get_layer(n).output.shape[1:]) for n in ("score_fr", "fuse_pool4", "fuse_pool3")}
    assert shapes == {"score_fr": (3, 3, 4), "fuse_pool4": (6, 6, 4), "fuse_pool3": (12, 12, 4)}
    y = model(np.random.default_rng(0).random((1, 96, 96, 3), dtype=np.float32)).numpy()
    assert y.shape == (1, 96, 96, 4)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(y, 0.25, rtol=1e-6)  # zero-initialised score layers: uniform until trained


def test_an_fcn_holds_no_weights_but_its_own():
    import gc

    import keras

    def alive() -> set[int]:
        gc.collect()
        return {id(v) for v in gc.get_objects() if isinstance(v, keras.Variable)}

    before = alive()
    model = create_model("fcn8s_vgg16", input_shape=(64, 64, 3), width=1 / 16, classes=4)
    # the VGG16 it was converted from is garbage, its ImageNet classifier (``predictions``) included
    assert alive() - before == {id(v) for v in model.variables}


def test_segmentation_models_are_their_own_kind():
    segmenters = list_models(kind="segmentation")
    assert {"fcn32s_vgg16", "fcn16s_vgg16", "fcn8s_vgg16", "fcn8s_resnet50", "fcn8s_xception"} <= set(segmenters)
    assert not set(segmenters) & set(list_models(kind="classification"))
