"""Training recipes: the warm-up schedule, held-out validation images, seeded augmentation, and where a recipe may
run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnbench.harness import run
from cnnbench.spec import RunConfig, resolve
from cnnbench.tasks import get_task
from cnnbench.training import affine_transforms, get_recipe, schedule


def test_warm_up_rises_linearly_then_decays_to_zero():
    rate = schedule(3e-3, steps=110, warmup_steps=10)
    values = [float(rate(step)) for step in (0, 5, 10, 60, 110)]
    assert values == pytest.approx([0.0, 1.5e-3, 3e-3, 1.5e-3, 0.0], abs=1e-9)
    plain = schedule(2e-3, steps=10)
    assert [float(plain(step)) for step in (0, 5, 10)] == pytest.approx([2e-3, 1e-3, 0.0], abs=1e-9)


def test_validation_images_are_the_last_training_images_and_never_trained_on(mnist):
    data = get_task("mnist").prepare(input_shape=(28, 28, 1), batch_size=500, seed=0, validation_images=5000)
    assert (data.n_train, data.dataset["n_val"]) == (55_000, 5000)
    val_x, val_y = map(np.concatenate, zip(*[(x.numpy(), y.numpy()) for x, y in data.val], strict=True))
    np.testing.assert_array_equal(val_y, mnist.y_train[55_000:])
    np.testing.assert_allclose(val_x[..., 0], mnist.x_train[55_000:] / 255.0, atol=1e-6)
    subset = get_task("mnist").prepare(input_shape=(28, 28, 1), batch_size=500, seed=0, train_subset=1000,
                                       validation_images=5000)
    assert subset.n_train == 1000 and sum(int(y.shape[0]) for _, y in subset.val) == 5000
    with pytest.raises(ValueError, match="validation_images"):
        get_task("mnist").prepare(input_shape=(28, 28, 1), batch_size=500, seed=0, validation_images=60_000)


def test_augmentation_is_seeded_keeps_labels_and_moves_pixels(mnist):
    x = tf.constant(mnist.x_train[:64, :, :, None] / 255.0, tf.float32)
    y = tf.constant(mnist.y_train[:64])

    def first_batches(seed):
        augment = get_recipe("augment").augmentation(seed)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(lambda a, b: (augment(a, training=True), b))
        return [(a.numpy(), b.numpy()) for a, b in ds]

    once, again, other = first_batches(0), first_batches(0), first_batches(1)
    for (a, _), (b, _), (c, _) in zip(once, again, other, strict=True):
        np.testing.assert_array_equal(a, b)  # same seed, same images
        assert not np.allclose(a, c)  # another seed draws other transforms
    for batches in (once, other):  # every image keeps its own label
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]), y.numpy())
    augmented = np.concatenate([a for a, _ in once])
    assert augmented.shape == (64, 28, 28, 1) and augmented.min() >= -1e-6
    assert np.abs(augmented - x.numpy()).mean() > 0.02  # the images moved
    assert get_recipe("plain").augmentation(0) is None


def _affine(image, angle=0.0, scale=1.0, tx=0.0, ty=0.0):
    h, w = image.shape
    t = affine_transforms(*(tf.constant([v], tf.float32) for v in (angle, scale, tx, ty)), h, w)
    out = keras.ops.image.affine_transform(tf.constant(image[None, :, :, None], tf.float32), t,
                                           interpolation="bilinear", fill_mode="constant")
    return keras.ops.convert_to_numpy(out)[0, :, :, 0]


def test_one_affine_resampling_rotates_scales_and_shifts_about_the_centre():
    image = np.arange(49, dtype="float32").reshape(7, 7) + 1
    np.testing.assert_allclose(_affine(image), image, atol=1e-4)  # identity
    np.testing.assert_allclose(_affine(image, angle=np.pi / 2), np.rot90(image), atol=1e-4)  # a quarter turn
    np.testing.assert_allclose(_affine(image, tx=2), np.pad(image, ((0, 0), (2, 0)))[:, :7], atol=1e-4)  # 2 px right
    np.testing.assert_allclose(_affine(image, ty=-1), np.pad(image, ((0, 1), (0, 0)))[1:], atol=1e-4)  # 1 px up
    half = _affine(image, scale=2.0)  # content shrinks to half about the centre (3, 3): output (4, 4) reads (5, 5)
    assert half[3, 3] == pytest.approx(image[3, 3]) and half[4, 4] == pytest.approx(image[5, 5])
    assert half[0, 0] == 0  # reads (-3, -3): outside, filled with background


def test_label_smoothing_moves_the_targets_off_one_hot():
    recipe = get_recipe("augment")
    assert recipe.label_smoothing == 0.1 and get_recipe("plain").loss("sparse_categorical_crossentropy") == \
        "sparse_categorical_crossentropy"
    p = np.array([[0.7, 0.2, 0.1]], "float32")
    expected = -(0.9 + 0.1 / 3) * np.log(0.7) - 0.1 / 3 * (np.log(0.2) + np.log(0.1))
    got = recipe.loss("sparse_categorical_crossentropy")(np.array([0]), p)
    assert float(keras.ops.convert_to_numpy(got)[0]) == pytest.approx(expected, rel=1e-5)


def test_mnist_cnn_trains_by_its_recipe_and_records_it(mnist):
    """The smoke profile's recipe for mnist_cnn, with the held-out images a run that chooses settings asks for."""
    r = run(RunConfig(arch="mnist_cnn", profile="smoke", seed=0, epochs=2, train_subset=1024, measure_memory=False,
                      measure_throughput=False, hold_out=5000), verbose=0)
    recipe, m = r["config"]["recipe"], r["metrics"]
    assert recipe["name"] == "augment" and recipe["validation_images"] == 5000 and recipe["augment"]["rotation"] == 10
    assert r["config"]["settings"]["recipe"] == "augment, 5,000 held out"
    assert r["config"]["optimizer"]["warmup_epochs"] == 1.0
    assert (r["dataset"]["n_train"], r["dataset"]["n_val"]) == (1024, 5000)
    assert len(m["val_accuracy_curve"]) == 2 and 0.5 < m["val_accuracy"] <= 1.0 and m["test_accuracy"] > 0.5
    assert r["params"]["total"] == 171_818


def test_plain_recipe_records_no_validation(smoke_record):
    assert smoke_record["config"]["recipe"]["name"] == "plain" and "val_accuracy" not in smoke_record["metrics"]
    assert smoke_record["dataset"]["n_val"] == 0


def test_a_recipe_is_refused_where_the_task_trains_by_its_own():
    with pytest.raises(ValueError, match="augment recipe"):
        resolve(RunConfig(arch="resnet18", task="transfer", profile="smoke", recipe="augment"))
    with pytest.raises(ValueError, match="augment recipe"):
        resolve(RunConfig(arch="fcn8s_vgg16", task="segmentation", profile="smoke", recipe="augment"))
    with pytest.raises(KeyError, match="plain"):  # an unknown recipe names the known ones
        resolve(RunConfig(arch="lenet5", profile="smoke", recipe="bogus"))


def test_the_sgd_recipe_trains_with_momentum_and_records_its_optimizer(mnist):
    optimizer = get_recipe("sgd").make_optimizer(0.1)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9 and not optimizer.nesterov
    assert isinstance(get_recipe("plain").make_optimizer(0.1), keras.optimizers.Adam)
    r = run(RunConfig(arch="lenet5", profile="smoke", seed=0, epochs=2, train_subset=1024, learning_rate=0.05,
                      recipe="sgd", measure_memory=False, measure_throughput=False), verbose=0)
    assert r["config"]["optimizer"]["name"] == "momentum" and r["config"]["settings"]["recipe"] == "sgd"
    assert r["config"]["determinants"]["recipe"] == "sgd" and r["metrics"]["test_accuracy"] > 0.5
