"""Loading a user's saved model safely."""

from __future__ import annotations

import os
from pathlib import Path

import keras


def load_model_file(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` file with ``safe_mode=True``: a Lambda layer's pickled bytecode is refused, not run.

    The registry's custom layers (LRN, LeNet-1998's layers, ...) are registered on import and load by name.
    """
    import architectures  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a .keras file (the Keras 3 format), got {path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return keras.saving.load_model(path, safe_mode=True, compile=False)
