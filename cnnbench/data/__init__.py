"""Datasets as verified uint8 arrays. Each loader checks fixed sha256 checksums before returning anything."""

from cnnbench.data._store import ArrayDataset, ChecksumError, DataUnavailableError, data_dir

__all__ = ["ArrayDataset", "ChecksumError", "DataUnavailableError", "data_dir", "load"]


def load(name: str, **kwargs) -> ArrayDataset:
    """Load a dataset by name (the harness' only door to data)."""
    if name == "mnist":
        from cnnbench.data.mnist import load_mnist

        return load_mnist(**kwargs)
    if name == "fashion_mnist":
        from cnnbench.data.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist(**kwargs)
    raise KeyError(f"unknown dataset {name!r}")
