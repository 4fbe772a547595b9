"""Training recipes: the warm-up schedule, held-out validation images, seeded augmentation, and where a recipe may
run."""

import numpy as np
import pytest
import tensorflow as tf

from cnnbench.harness import RunConfig, run, validate_cell
from cnnbench.tasks import get_task
from cnnbench.training import get_recipe, schedule


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
    for (a, la), (b, lb), (c, _) in zip(once, again, other, strict=True):
        np.testing.assert_array_equal(a, b)  # same seed, same images
        assert not np.allclose(a, c)  # another seed draws other transforms
        np.testing.assert_array_equal(la, lb)
    augmented = np.concatenate([a for a, _ in once])
    assert augmented.shape == (64, 28, 28, 1) and augmented.min() >= -1e-6
    assert np.abs(augmented - x.numpy()).mean() > 0.02  # the images moved
    assert get_recipe("plain").augmentation(0) is None


def test_mnist_cnn_trains_by_its_recipe_and_records_it(mnist):
    r = run(RunConfig(arch="mnist_cnn", profile="smoke", seed=0, epochs=2, train_subset=1024, measure_memory=False,
                      measure_throughput=False), verbose=0)
    recipe, m = r["config"]["recipe"], r["metrics"]
    assert recipe["name"] == "augment" and recipe["validation_images"] == 5000 and recipe["augment"]["rotation"] == 10
    assert r["config"]["optimizer"]["warmup_epochs"] == 1.0
    assert (r["dataset"]["n_train"], r["dataset"]["n_val"]) == (1024, 5000)
    assert len(m["val_accuracy_curve"]) == 2 and 0.5 < m["val_accuracy"] <= 1.0 and m["test_accuracy"] > 0.5
    assert r["params"]["total"] == 171_818


def test_plain_recipe_records_no_validation(smoke_record):
    assert smoke_record["config"]["recipe"]["name"] == "plain" and "val_accuracy" not in smoke_record["metrics"]
    assert smoke_record["dataset"]["n_val"] == 0


def test_a_recipe_is_refused_where_the_task_trains_by_its_own():
    with pytest.raises(ValueError, match="augment recipe"):
        validate_cell(RunConfig(arch="resnet18", task="transfer", profile="smoke", recipe="augment"))
    with pytest.raises(ValueError, match="augment recipe"):
        validate_cell(RunConfig(arch="fcn8s_vgg16", task="segmentation", profile="smoke", recipe="augment"))
    with pytest.raises(KeyError, match="plain"):  # an unknown recipe names the known ones
        validate_cell(RunConfig(arch="lenet5", profile="smoke", recipe="bogus"))
