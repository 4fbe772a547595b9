"""The registry contract, checked for every registered model (a new model is tested the moment it registers)."""

import inspect

import keras
import numpy as np
import pytest

import architectures
from architectures import create_model, list_models, model_info, register
from cnnbench.measure.params import count_params

MODELS = list_models()


def small(name):
    """The smoke profile's builder keywords for ``name`` on its kind's task: a small input and reduced width."""
    from cnnbench.profiles import get_profile
    from cnnbench.tasks import home_task

    return get_profile("smoke").builder_kwargs(name, home_task(name))


def test_lenet_variants_registered():
    assert {"lenet5", "lenet5_1998"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_metadata_complete(name):
    info = model_info(name)
    assert info.paper and 1980 < info.year < 2030 and info.innovations
    assert len(info.default_input_shape) == 3 and info.reference_params > 0 and info.param_convention
    assert info.variant, "the builder docstring must state the variant"
    params = inspect.signature(info.builder).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert {"input_shape", "classes", "include_top", "pooling"} <= set(params)


@pytest.mark.parametrize("name", MODELS)
def test_param_count_equals_reference_at_paper_input(name, paper_model):
    info = model_info(name)
    model = paper_model(name)
    assert model.input_shape[1:] == info.default_input_shape
    assert count_params(model)[info.count] == info.reference_params


@pytest.mark.parametrize("name", MODELS)
def test_forward_pass_finite_with_right_shape(name):
    kwargs = small(name)
    model = create_model(name, classes=10, **kwargs)
    shape = kwargs.get("input_shape", model_info(name).default_input_shape)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    y = np.asarray(model(x, training=False))
    per_pixel = model_info(name).kind == "segmentation"  # a class distribution per pixel, at the input's size
    assert y.shape == ((2, *shape[:2], 10) if per_pixel else (2, 10))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_headless_pooling(name, pooling):
    """``pooling`` ends the headless model with the global pooling it names (keras.applications' contract); the
    perceptron has no feature map to pool and ignores it."""
    model = create_model(name, include_top=False, pooling=pooling, **small(name))
    assert len(model.output_shape) == 2
    if name == "mlp":
        return
    expected = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}[pooling]
    assert isinstance(model.layers[-1], expected), (name, model.layers[-1])


def test_list_models_pattern():
    assert list_models("lenet5*") == ["lenet5", "lenet5_1998"]
    assert list_models("nothing-like-this*") == []


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean 'lenet5'"):
        model_info("lenet6")


def test_overrides_reach_the_builder():
    assert create_model("lenet5", classes=7).output_shape == (None, 7)
    assert count_params(create_model("lenet5", width=0.5))["total"] < 61_706


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="pooling"):
        create_model("lenet5", include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="at least"):
        create_model("lenet5", input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="classes"):
        create_model("lenet5_1998", classes=5)


def test_register_rejects_duplicates_and_positional_builders():
    meta = dict(paper="p", year=2000, innovations="x", default_input_shape=(8, 8, 1), reference_params=1,
                param_convention="c")
    with pytest.raises(ValueError, match="twice"):
        register("lenet5", **meta)(lambda *, input_shape=None: None)
    with pytest.raises(TypeError, match="keyword-only"):
        register("positional_model", **meta)(lambda input_shape: None)
    assert "positional_model" not in architectures.list_models()
