"""Real Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747): 60,000 / 10,000 uint8 28x28, ten clothing classes.

Sources, first that works wins, each verified against the same array checksums (canonical order):

1. our cache (``<data dir>/fashion_mnist.npz``);
2. the Debian package ``dataset-fashion-mnist`` when installed (the original IDX files in
   ``/usr/share/datasets/fashion-mnist/``);
3. the same package fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (no root, nothing installed);
4. an existing keras cache (``~/.keras/datasets/fashion-mnist/``) or TFDS copy;
5. keras' own download, when the internet is reachable.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from cnnbench.data._store import ArrayDataset, canonical_split, from_keras_download, from_tfds, load_verified

log = logging.getLogger(__name__)

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
#: sha256 (dtype, shape and bytes; see ``array_sha256``) of each array in canonical order.
CHECKSUMS = {
    "x_train": "d2e95fc1e1241d19bd7c0e37ecb43c6ae926ad191177db234094405f79e379f3",
    "y_train": "d1049dddb3af6183875c5817bcd39f361fa0a8b0809f820b4461819b42892bb3",
    "x_test": "0c04b7a8b22d2d4e3c3b8483a5c75a177f03d3b8eb28d98b88692c1d0c367ef7",
    "y_test": "00584ef56bcb8d992833adf0eb51e013174211aecf6cb725d8407fba78960447",
}


def read_idx(raw: bytes) -> np.ndarray:
    """An IDX array (big-endian header: magic with the dtype and rank, then each dimension) as uint8."""
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    rank = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw[4:4 + 4 * rank], ">u4"))
    data = np.frombuffer(raw[4 + 4 * rank:], np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"IDX payload has {data.size} bytes for shape {shape}")
    return data.reshape(shape)


def read_idx_dir(directory: Path) -> dict[str, np.ndarray] | None:
    if not all((directory / f).exists() for f in FILES.values()):
        return None
    arrays = {k: read_idx(gzip.decompress((directory / f).read_bytes())) for k, f in FILES.items()}
    return canonical_split(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])


def _from_debian_install():
    return read_idx_dir(DEBIAN_DIR)


def _from_debian_download():
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        log.info("fetching the Debian package %s (apt-get download; not installed)", DEBIAN_PACKAGE)
        proc = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode or not debs:
            log.warning("apt-get download %s failed: %s", DEBIAN_PACKAGE, proc.stderr.strip()[-500:])
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "root")], check=True)
        return read_idx_dir(Path(tmp) / "root" / DEBIAN_DIR.relative_to("/"))


def _from_keras_cache():
    return read_idx_dir(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist")


SOURCES = [
    ("debian:" + DEBIAN_PACKAGE, _from_debian_install),
    ("apt-get-download:" + DEBIAN_PACKAGE, _from_debian_download),
    ("keras-cache", _from_keras_cache),
    ("tfds", lambda: from_tfds("fashion_mnist")),
    ("keras-download", lambda: from_keras_download("fashion_mnist")),
]


def load_fashion_mnist(*, data_dir_override: str | os.PathLike | None = None) -> ArrayDataset:
    """The official Fashion-MNIST split, verified; fetched once, then read from the cache."""
    return load_verified("fashion_mnist", sources=SOURCES, checksums=CHECKSUMS, num_classes=10,
                         hint=f"Debian {DEBIAN_PACKAGE} installed or via apt-get download, keras cache, TFDS, "
                              "keras download", data_dir_override=data_dir_override)
