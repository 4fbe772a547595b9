"""Segmentation data as uint8 arrays: images ``(N, H, W[, 3])`` and per-pixel class masks ``(N, H, W)``.

* ``mnist_composites`` — the offline default: real MNIST digits (the verified official split) pasted onto a larger
  black canvas, one to three per image at random places, overlaps allowed. The pixels are real, the layouts are
  generated. Each pixel's class is the digit whose ink (intensity >= 128) covers it most strongly, else background:
  11 classes, ``background`` and ``0``-``9``. Train composites draw from the first 50,000 training digits,
  validation from the last 10,000, test from the official test digits, so no digit crosses splits. The layouts come
  from a fixed seed (not the run's): every run of every architecture sees the same images, identified by one sha256.
* ``tfds:oxford_iiit_pet`` — the Oxford-IIIT Pet trimaps (pet / background / border) through TFDS, when it is
  prepared locally or downloadable.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cnnbench.data._store import array_sha256

DIGIT = 28
INK = 128
MAX_DIGITS = 3
LAYOUT_SEED = 0
SPLITS = ("train", "val", "test")
COMPOSITE_CLASSES = ("background", *map(str, range(10)))
#: Oxford-IIIT Pet trimap values 1 (pet), 2 (background), 3 (border) → our classes.
PET_CLASSES = ("background", "pet", "border")
PET_TRIMAP = np.array([0, 1, 0, 2], np.uint8)  # index = trimap value


def composites(digits: np.ndarray, labels: np.ndarray, n: int, canvas: tuple[int, int], *,
               rng: np.random.Generator, max_digits: int = MAX_DIGITS) -> tuple[np.ndarray, np.ndarray]:
    """``n`` canvases of 1..``max_digits`` digits drawn from ``digits``: (uint8 images, uint8 masks), both (n, H, W)."""
    h, w = canvas
    if h < DIGIT or w < DIGIT:
        raise ValueError(f"the canvas must hold a {DIGIT}x{DIGIT} digit, got {h}x{w}")
    counts = rng.integers(1, max_digits + 1, n)
    picks = rng.integers(0, len(digits), (n, max_digits))
    tops, lefts = rng.integers(0, h - DIGIT + 1, (n, max_digits)), rng.integers(0, w - DIGIT + 1, (n, max_digits))
    layers = np.zeros((max_digits, n, h, w), np.uint8)
    for i in range(n):
        for k in range(counts[i]):
            layers[k, i, tops[i, k]:tops[i, k] + DIGIT, lefts[i, k]:lefts[i, k] + DIGIT] = digits[picks[i, k]]
    images = layers.max(axis=0)
    strongest = layers.argmax(axis=0)
    digit_class = np.take_along_axis(labels[picks].astype(np.uint8), strongest.reshape(n, -1), axis=1).reshape(n, h, w)
    masks = np.where(images >= INK, digit_class + 1, 0).astype(np.uint8)
    return images, masks


def mnist_composites(canvas: tuple[int, int], sizes: dict[str, int], *, seed: int = LAYOUT_SEED,
                     data_dir=None) -> dict:
    """``{"train" | "val" | "test": (images, masks), "classes": names, "identity": record fields}``."""
    from cnnbench.data.mnist import load_mnist

    mnist = load_mnist(data_dir_override=data_dir)
    pools = {"train": (mnist.x_train[:50_000], mnist.y_train[:50_000]),
             "val": (mnist.x_train[50_000:], mnist.y_train[50_000:]),
             "test": (mnist.x_test, mnist.y_test)}
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))  # one stream per split: sizes change one split only
    out = {split: composites(*pools[split], sizes[split], tuple(canvas), rng=np.random.default_rng(stream))
           for split, stream in zip(SPLITS, streams, strict=True)}
    identity = {"name": "mnist_composites", "source": "mnist_composites",
                "note": "real MNIST digits on generated layouts (1-3 digits per canvas, overlaps allowed), not "
                        "natural images",
                "sha256": digest(out), "mnist_sha256": mnist.sha256, "layout_seed": seed, "canvas": list(canvas),
                "ink_threshold": INK, "num_classes": len(COMPOSITE_CLASSES)}
    return out | {"classes": list(COMPOSITE_CLASSES), "identity": identity}


def oxford_pets(name: str, canvas: tuple[int, int], sizes: dict[str, int | None], *, data_dir=None) -> dict:
    """A TFDS segmentation set with ``image`` and ``segmentation_mask`` (Oxford-IIIT Pet trimaps), resized to the
    canvas (bilinear images, nearest masks); validation = the last 10 % of TFDS' train split."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def arrays(split: str, limit: int | None):
        ds, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
        xs, ys = [], []
        for example in tfds.as_numpy(ds.take(limit) if limit else ds):
            image = tf.image.resize(example["image"], canvas, method="bilinear")
            mask = tf.image.resize(example["segmentation_mask"], canvas, method="nearest")
            xs.append(np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8))
            ys.append(PET_TRIMAP[np.clip(mask.numpy()[..., 0], 0, 3)])
        return (np.stack(xs), np.stack(ys)), info

    train_val, info = arrays("train", None)
    n_val = max(1, len(train_val[0]) // 10)
    cut = lambda a, n: a[:n] if n else a  # noqa: E731
    out = {"train": tuple(cut(a[:-n_val], sizes["train"]) for a in train_val),
           "val": tuple(cut(a[-n_val:], sizes["val"]) for a in train_val),
           "test": arrays("test", sizes["test"])[0]}
    identity = {"name": name, "source": f"tfds:{name}", "version": str(info.version), "sha256": digest(out),
                "canvas": list(canvas), "num_classes": len(PET_CLASSES)}
    return out | {"classes": list(PET_CLASSES), "identity": identity}


def digest(splits: dict) -> str:
    """One sha256 over every split's images and masks, in split order."""
    return hashlib.sha256("".join(array_sha256(a) for s in SPLITS for a in splits[s]).encode()).hexdigest()
