"""A stand-in for nvidia-ml-py that reports ``FAKE_NVML_GPUS`` (default 1) NVIDIA H100s (80 GiB, 1 GiB in use, no
processes): the tests must pass where NVML sees a GPU although TensorFlow sees none, and a test of the GPU-less path
must not depend on the machine it runs on (``FAKE_NVML_GPUS=0``). Put this folder first on ``PYTHONPATH`` (the
conftest does it under ``CNNBENCH_FAKE_NVML=1``, subprocesses included)."""

import os
from types import SimpleNamespace

TOTAL, USED = 80 * 2**30, 2**30


class NVMLError(Exception):
    pass


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return int(os.environ.get("FAKE_NVML_GPUS", "1"))


def nvmlDeviceGetHandleByIndex(index):
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError(f"no device {index}")
    return index


def nvmlDeviceGetName(handle):
    return "NVIDIA H100 80GB HBM3"


def nvmlSystemGetDriverVersion():
    return "580.65.06"


def nvmlSystemGetCudaDriverVersion():
    return 13000


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(total=TOTAL, used=USED, free=TOTAL - USED)


def nvmlDeviceGetComputeRunningProcesses(handle):
    return []
