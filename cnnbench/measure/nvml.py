"""NVML (nvidia-ml-py): which NVIDIA GPUs the driver sees. Empty, not an error, where there is no driver."""

from __future__ import annotations


class NoGPUError(RuntimeError):
    """A GPU run was asked for on a machine where NVML sees no GPU."""


def gpu_names() -> list[str]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else name)
        return names
    finally:
        pynvml.nvmlShutdown()


def require_gpu() -> list[str]:
    names = gpu_names()
    if not names:
        raise NoGPUError(
            "no NVIDIA GPU visible through NVML (no driver, no device, or nvidia-ml-py missing); the gpu profile "
            "needs one. Run `nox -s bench-cpu` on this machine instead."
        )
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise NoGPUError(f"NVML sees {names} but TensorFlow sees no GPU: install the CUDA build (`pip install "
                         "'tensorflow[and-cuda]'`, the `gpu` extra) and check `nvidia-smi`.")
    return names
