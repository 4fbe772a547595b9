"""NVML (nvidia-ml-py): which NVIDIA GPUs the driver sees, its version, memory in use (per device, per process).
Empty or None, not an error, where there is no driver."""

from __future__ import annotations


class NoGPUError(RuntimeError):
    """A GPU run was asked for on a machine where NVML sees no GPU."""


def gpu_names() -> list[str]:
    def read(nv, _):
        names = [nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(i)) for i in range(nv.nvmlDeviceGetCount())]
        return [n.decode() if isinstance(n, bytes) else n for n in names]

    return _query(read) or []


def require_gpu() -> list[str]:
    names = gpu_names()
    if not names:
        raise NoGPUError(
            "no NVIDIA GPU visible through NVML (no driver, no device, or nvidia-ml-py missing); the gpu profile "
            "needs one (paper-sized inputs, full data: hours on a CPU). Use --profile cpu (`nox -s bench-cpu`) on "
            "this machine, or --allow-cpu to run the gpu profile on the CPU anyway."
        )
    from cnnbench import backends

    if backends.current().gpu() is None:
        raise NoGPUError(f"NVML sees {names} but Keras' {backends.name()} backend sees no GPU: install its CUDA build "
                         "(TensorFlow: the `gpu` extra, `pip install 'tensorflow[and-cuda]'`; JAX: `pip install "
                         "'jax[cuda13]'`) and check `nvidia-smi`.")
    return names


def _query(fn):
    """``fn(pynvml, handle of GPU 0)`` with NVML started and stopped around it; None where NVML or a GPU is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        return fn(pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def gpu_info() -> dict | None:
    """GPU 0 as NVML describes it: name, driver, the CUDA version the driver supports, total memory."""

    def read(nv, h):
        cuda = nv.nvmlSystemGetCudaDriverVersion()
        name = nv.nvmlDeviceGetName(h)
        return {"type": "gpu", "name": name.decode() if isinstance(name, bytes) else name,
                "count": nv.nvmlDeviceGetCount(), "driver": nv.nvmlSystemGetDriverVersion(),
                "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}",
                "memory_total_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total)}

    return _query(read)


def used_bytes() -> int | None:
    """Memory in use on GPU 0, all processes together."""
    return _query(lambda nv, h: int(nv.nvmlDeviceGetMemoryInfo(h).used))


def process_used_bytes(pid: int) -> int | None:
    """Memory GPU 0's driver accounts to process ``pid`` (None where it does not say)."""

    def read(nv, h):
        return next((int(p.usedGpuMemory) for p in nv.nvmlDeviceGetComputeRunningProcesses(h)
                     if p.pid == pid and p.usedGpuMemory is not None), None)

    return _query(read)


def main() -> int:
    """``python -m cnnbench.nvml``: exit 2, saying why, unless NVML sees a GPU (or the check is forced off
    with ``CNNBENCH_ASSUME_GPU=1``). Needs only nvidia-ml-py: bench-gpu asks before installing anything large."""
    import os
    import sys

    if os.environ.get("CNNBENCH_ASSUME_GPU") == "1":
        return 0
    names = gpu_names()
    if not names:
        print("bench-gpu: no NVIDIA GPU visible through NVML (no driver, no device, or nvidia-ml-py missing). "
              "bench-gpu measures a GPU; on this machine run `nox -s bench-cpu` (the cpu profile) instead.",
              file=sys.stderr)
        return 2
    print(f"GPU: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
