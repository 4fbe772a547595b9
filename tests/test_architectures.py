"""Family-specific checks against keras.applications and the papers (the registry-wide ones are in test_registry)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from architectures import create_model, list_models
from architectures._layers import LocalResponseNormalization
from architectures.googlenet import AuxiliaryLossModel
from cnnbench.measure.params import count_params


def _shapes(model, names):
    return [tuple(model.get_layer(n).output.shape) for n in names]


def test_resnet50_matches_keras_applications_stage_by_stage(paper_model):
    ours, theirs = paper_model("resnet50"), keras.applications.ResNet50(weights=None)
    assert ours.count_params() == theirs.count_params() == 25_636_712
    outs = [layer.name for layer in theirs.layers if layer.name.endswith("_out")]
    assert len(outs) == 16
    assert _shapes(ours, outs) == _shapes(theirs, outs)
    # Same layer names, same weight shapes, layer by layer: the keras convention is keras' network.
    ours_w = {w.path.split("/", 1)[0] + "/" + w.name: tuple(w.shape) for w in ours.weights}
    theirs_w = {w.path.split("/", 1)[0] + "/" + w.name: tuple(w.shape) for w in theirs.weights}
    assert ours_w == theirs_w


@pytest.mark.parametrize(("name", "application"), [("resnet101", "ResNet101"), ("resnet152", "ResNet152")])
def test_deeper_resnets_count_as_keras_applications(name, application, paper_model):
    theirs = getattr(keras.applications, application)(weights=None)
    assert count_params(paper_model(name))["total"] == theirs.count_params()


@pytest.mark.parametrize(("name", "last"), [("resnet18", "_2_bn"), ("resnet50", "_3_bn"), ("seresnet50", "_3_bn")])
def test_zero_init_residual_starts_every_block_as_its_shortcut(name, last):
    """torchvision's ``zero_init_residual``: only the residual branches' last BN scales start at 0; the parameter count
    and every other initial weight's shape stay; a block's output is then relu(shortcut)."""
    kw = {"input_shape": (32, 32, 3), "width": 0.25, "classes": 10}
    keras.utils.set_random_seed(0)
    plain = create_model(name, **kw)
    keras.utils.set_random_seed(0)
    zero = create_model(name, zero_init_residual=True, **kw)
    assert zero.count_params() == plain.count_params()
    bns = (layer for layer in zero.layers if isinstance(layer, keras.layers.BatchNormalization))
    gammas = {layer.name: layer.gamma.numpy() for layer in bns}
    zeroed = {n for n, g in gammas.items() if not g.any()}
    assert zeroed == {n for n in gammas if n.endswith(last) and "_block" in n} and len(zeroed) >= 8
    assert all(g.all() for n, g in gammas.items() if n not in zeroed)
    block = zero.get_layer("conv2_block2_out")
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    before, after = keras.Model(zero.input, [zero.get_layer("conv2_block1_out").output, block.output])(x)
    np.testing.assert_allclose(after, np.maximum(before, 0), rtol=1e-6, atol=1e-6)


def test_xception_matches_keras_applications_block_by_block(paper_model):
    ours, theirs = paper_model("xception"), keras.applications.Xception(weights=None)
    assert ours.count_params() == theirs.count_params() == 22_910_480
    assert count_params(ours)["trainable"] == 22_855_952
    add = lambda m: [tuple(layer.output.shape) for layer in m.layers if isinstance(layer, keras.layers.Add)]  # noqa: E731
    assert len(add(ours)) == 12 and add(ours) == add(theirs)  # entry 2-4, middle 5-12, exit 13
    names = (layer.name for layer in theirs.layers)
    named = [n for n in names if n.startswith("block") and n.endswith(("_act", "_pool"))]
    assert _shapes(ours, named) == _shapes(theirs, named)


def test_alexnet_towers_are_grouped_convolutions(paper_model):
    model = paper_model("alexnet")
    groups = {n: model.get_layer(n).groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)  # 227 → 55 → 27 → 13 → 6
    assert [layer.name for layer in model.layers if "lrn" in layer.name] == ["conv1_lrn", "conv2_lrn"]
    assert {model.get_layer(n).rate for n in ("fc6_dropout", "fc7_dropout")} == {0.5}


def test_alexnet_towers_compute_the_grouped_convolution():
    """Each tower convolved apart (``TowerConv2D``, fast on a CPU) gives the grouped convolution's output, with the
    same kernel, and survives serialisation."""
    from architectures.alexnet import TowerConv2D

    x = np.random.default_rng(0).random((2, 7, 7, 8), dtype=np.float32)
    towers = TowerConv2D(6, 3, groups=2, padding="same", activation="relu")
    grouped = keras.layers.Conv2D(6, 3, groups=2, padding="same", activation="relu")
    towers.build(x.shape), grouped.build(x.shape)
    grouped.set_weights(towers.get_weights())
    np.testing.assert_allclose(np.asarray(towers(x)), np.asarray(grouped(x)), rtol=1e-5, atol=1e-6)
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(towers)), TowerConv2D)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_lrn_is_the_papers_formula(backend, monkeypatch):
    """Both implementations: ``tf.nn.lrn`` on TensorFlow, cumulative sums (keras.ops) on the other backends."""
    monkeypatch.setattr(keras.config, "backend", lambda: backend)  # the ops path runs on TensorFlow tensors too
    x = np.random.default_rng(0).random((1, 2, 2, 7), dtype=np.float32) * 10
    y = np.asarray(LocalResponseNormalization(k=2, n=5, alpha=1e-2, beta=0.75)(x))
    sq = np.pad(x**2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(sq[..., i:i + 7] for i in range(5))
    np.testing.assert_allclose(y, x / (2 + 1e-2 * window) ** 0.75, rtol=1e-5)
    caffe = LocalResponseNormalization.caffe(local_size=5, alpha=1e-4, beta=0.75)
    assert (caffe.k, caffe.alpha) == (1.0, pytest.approx(2e-5))


def test_xception_dropout_before_the_classifier_as_in_the_paper(paper_model):
    """§4.3: dropout 0.5 before the logistic regression; ``dropout=0`` is keras.applications' layout. Same counts."""
    ours = paper_model("xception")
    assert [layer.name for layer in ours.layers[-4:]] == ["avg_pool", "dropout", "predictions", "predictions_softmax"]
    assert ours.get_layer("dropout").rate == 0.5
    keras_layout = create_model("xception", dropout=0.0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in keras_layout.layers)
    assert count_params(keras_layout) == count_params(ours)


def test_googlenet_table1_and_aux_heads(paper_model):
    plain = paper_model("googlenet")
    assert plain.get_layer("inception_5b_output").output.shape[1:] == (7, 7, 1024)
    assert plain.get_layer("inception_4e_output").output.shape[1:] == (14, 14, 832)
    assert not any("bn" in layer.name or isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    aux = create_model("googlenet", aux_logits=True)
    assert isinstance(aux, AuxiliaryLossModel)
    assert count_params(aux)["total"] == 6_998_552 + 3_188_840 + 3_190_888


def test_googlenet_aux_loss_counts_in_training_only():
    model = create_model("googlenet", aux_logits=True, input_shape=(96, 96, 3), width=0.125, classes=10)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = tf.random.stateless_uniform((4, 96, 96, 3), seed=(0, 1))
    y = tf.constant([0, 1, 2, 3])
    assert model(x, training=False).shape == (4, 10)  # inference: the main head only
    pred = model(x, training=True)
    main = float(model.compute_loss(x, y, pred, training=False))
    total = float(model.compute_loss(x, y, pred, training=True))
    aux = [float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, p))) for p in model._aux_predictions]
    assert len(aux) == 2 and total == pytest.approx(main + 0.3 * sum(aux), rel=1e-5)


def test_se_hook_adds_exactly_the_squeeze_excitation_weights(paper_model):
    se, plain = count_params(paper_model("seresnet50")), count_params(paper_model("resnet50_tv"))
    stages = [(256, 3), (512, 4), (1024, 6), (2048, 3)]
    expected = sum(n * (2 * c * (c // 16) + c // 16 + c) for c, n in stages)
    assert se["trainable"] - plain["trainable"] == expected == 2_530_992


@pytest.mark.parametrize(("name", "stride_layer"), [("resnet50", "conv3_block1_1_conv"),
                                                     ("resnet50_tv", "conv3_block1_2_conv"),
                                                     ("seresnet50", "conv3_block1_1_conv")])  # the SE authors' model
def test_where_the_stride_sits(name, stride_layer, paper_model):
    model = paper_model(name)
    strided = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
               and layer.name.startswith("conv3_block1") and layer.strides == (2, 2)]
    assert sorted(strided) == sorted([stride_layer, "conv3_block1_0_conv"])
    assert math.prod(model.get_layer("conv3_block1_out").output.shape[1:]) == 28 * 28 * 512


@pytest.mark.parametrize(("name", "kwargs"), [
    ("googlenet", {"aux_logits": True, "input_shape": (96, 96, 3), "width": 0.125}),
    ("alexnet", {"input_shape": (67, 67, 3), "width": 0.125}),
    ("seresnet50", {"input_shape": (32, 32, 3), "width": 0.125}),
])
def test_custom_layers_survive_a_safe_mode_round_trip(name, kwargs, tmp_path):
    from cnnbench.modelfile import load_model_file

    model = create_model(name, classes=10, **kwargs)
    model.save(tmp_path / "m.keras")
    loaded = load_model_file(tmp_path / "m.keras")
    x = tf.random.stateless_uniform((2, *kwargs["input_shape"]), seed=(3, 4))
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-6)


#: what a model's first weighted layer was built for, where a paper says (else: the pixels' own range, about [0, 1])
BUILT_FOR = {"lenet5_1998": (-0.1, 1.175)}  # LeCun et al. 1998, §II.B: background −0.1, ink 1.175


@pytest.mark.parametrize("arch", list_models(kind="classification"))
def test_the_first_layer_sees_the_range_it_was_built_for(arch, mnist):
    """Real MNIST batches through the task's pipeline into the model as the smoke profile builds it: what the first
    weighted layer receives spans the range it was built for (black to white ≈ a unit apart), not a sliver of it — as
    EfficientNet-Lite's in-model (x − 127) / 128 once made of [0, 1] pixels: [−0.992, −0.984]."""
    from cnnbench.measure.graph import graph_ops
    from cnnbench.profiles import get_profile
    from cnnbench.tasks import get_task

    kwargs = get_profile("smoke").builder_kwargs(arch, "mnist") | {"classes": 10}
    kwargs.pop("aux_logits", None)
    model = create_model(arch, **kwargs)
    shape = kwargs.get("input_shape") or model.inputs[0].shape[1:]
    first = next(op for op in graph_ops(model) if op.layer.weights)
    probe = keras.Model(model.inputs, first.inputs[0])
    data = get_task("mnist").prepare(input_shape=tuple(shape), batch_size=16, seed=0, train_subset=16,
                                     test_subset=16)
    x, _ = next(iter(data.train))
    seen = np.asarray(probe(x))
    assert float(np.min(x)) == 0.0 and 0.99 <= float(np.max(x)) <= 1.0  # the task's contract: pixels in [0, 1]
    span = (first.layer.name, seen.min(), seen.max())
    if arch in BUILT_FOR:
        assert seen.min() == pytest.approx(BUILT_FOR[arch][0], abs=1e-6), span
        assert seen.max() == pytest.approx(BUILT_FOR[arch][1], abs=0.01), span  # resizing leaves the max at 0.999
    else:
        assert seen.max() - seen.min() >= 0.9 and seen.min() >= -1.01 and seen.max() <= 1.01, span
