"""Datasets as verified uint8 arrays, one module each (``mnist.load_mnist``, ``fashion_mnist.load_fashion_mnist``):
each loader checks fixed sha256 checksums before returning anything. The task that reads a dataset names its loader."""

from cnnbench.data._store import ArrayDataset, ChecksumError, DataUnavailableError, data_dir

__all__ = ["ArrayDataset", "ChecksumError", "DataUnavailableError", "data_dir"]
