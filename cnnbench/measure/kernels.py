"""Scratch memory that kernels take from TensorFlow's allocator while they run — buffers no graph shows.

On x86 CPUs TensorFlow runs convolutions through oneDNN, and hands each forward convolution primitive a scratchpad
from its own allocator (so the probe's measured peak counts it). Which implementation oneDNN picks decides how large
it is (seen with ``ONEDNN_VERBOSE=1``, TF 2.21 / oneDNN 3.7, AVX2, two threads):

- a batch of one image: ``gemm:jit``, im2col. Its scratchpad is the im2col buffer (per thread when it threads over
  output rows) plus a transposed copy of the input, sized by oneDNN's own blocking heuristic
  (``src/cpu/gemm_convolution_utils.cpp``, ``init_conf``, f32 nhwc forward), ported below: it reproduces the
  scratchpad of 39 measured shapes to the byte (1x1 to 3x3, stride 1 and 2, 1 to 200 input maps; the exercise's
  convolutions: 1,459,264 / 19,500,256 / 9,840,256 bytes; a generated network's 5,388,544).
- larger batches: ``brg_conv_fwd`` / ``brgconv_1x1``, whose scratchpad is a few per-thread batch descriptors: 12,336
  bytes at two threads whatever the shape (measured on 140 shapes at batch 2 and 4), taken here as 6,040 bytes a
  thread plus the two bookings' alignment.

On AVX-512 machines (oneDNN's ``avx512_core``: TF 2.21 on a Xeon with AVX-512, two threads) every forward
convolution runs as ``brg_conv_fwd`` / ``brgconv_1x1`` at every batch, batch 1 included, and took nothing from TF's
allocator: 48 measured shapes (1x1 to 7x7, stride 1 and 2, 3 to 512 maps, 7 to 200 px, batches 1, 2, 8 and 32) showed
no temp allocation. Other ISAs (SSE4.1, AVX) are not measured and take the AVX2 rule.

Every booking in a oneDNN scratchpad reserves its size plus 128 bytes of alignment. Backward convolutions, pooling,
depthwise and transposed convolutions and matrix products took nothing from TF's allocator in those measurements
(their gradients' forward convolutions do, by the same rule). Without oneDNN (``TF_ENABLE_ONEDNN_OPTS=0``, ARM, a
GPU) this module predicts no scratch: a GPU's cuDNN workspaces are not modelled.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

BOOKING_ALIGNMENT = 128
BRGCONV_BYTES_PER_THREAD = 6040
BRGCONV_BOOKINGS = 2


@dataclass(frozen=True)
class CpuKernels:
    """What oneDNN's choices depend on: whether it is on, its threads, the per-core L2 cache, the instruction set."""

    onednn: bool
    threads: int
    l2_bytes: int
    isa: str = "avx2"  # or "avx512_core" (no forward-convolution scratch in TF's allocator)


@functools.cache
def this_cpu() -> CpuKernels:
    """This process's oneDNN setting (TensorFlow's own flag), the threads it may use and the L2 from sysfs."""
    from cnnbench.compat import onednn_enabled

    return CpuKernels(onednn=onednn_enabled(), threads=len(os.sched_getaffinity(0)),
                      l2_bytes=_l2_bytes(), isa=_isa())


def _isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``avx512_core`` where the CPU has AVX-512 F/BW/VL/DQ and oneDNN is not capped below it (``ONEDNN_MAX_CPU_ISA``,
    as oneDNN reads it), else ``avx2``."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").lower()
    if cap != "all" and not cap.startswith(("avx512_core", "avx10")):
        return "avx2"
    try:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "avx512_core" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags) else "avx2"


def _l2_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    for index in sorted(root.glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                text = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
                return int(text.rstrip("KM")) * scale
        except OSError:
            continue
    return 512 << 10  # unknown: a common per-core L2


def conv_scratch_bytes(*, batch: int, in_hw: tuple[int, int], in_c: int, out_hw: tuple[int, int], out_c: int,
                       kernel: tuple[int, int], strides: tuple[int, int], dilated: bool = False,
                       cpu: CpuKernels) -> int:
    """The scratchpad a float32 NHWC forward convolution takes from TF's allocator under oneDNN (0 without it)."""
    if not cpu.onednn or cpu.isa == "avx512_core":
        return 0
    if batch > 1:
        return cpu.threads * BRGCONV_BYTES_PER_THREAD + BRGCONV_BOOKINGS * BOOKING_ALIGNMENT
    return _gemm_nhwc_forward(in_hw, in_c, out_hw, out_c, kernel, strides, dilated, cpu)


def _div_up(a, b):
    return -(-a // b)


def _rnd_up(a, b):
    return _div_up(a, b) * b


def _gemm_nhwc_forward(in_hw, ic, out_hw, oc, kernel, strides, dilated, cpu: CpuKernels) -> int:
    """oneDNN 3.7 ``gemm_convolution_utils::init_conf``, f32, nspc, forward, batch 1, one group: the two buffers it
    books — im2col (``key_conv_gemm_col``, per thread under outer threading) and the transposed input
    (``key_conv_gemm_imtr``)."""
    data_size, nthreads, mb = 4, cpu.threads, 1
    simd_w, l2 = 32 // data_size, cpu.l2_bytes // data_size  # AVX2's 8 floats
    (ih, iw), (oh, ow), (kh, kw), (sh, sw) = in_hw, out_hw, kernel, strides
    ks, os_, is_ = kh * kw, oh * ow, ih * iw
    trivial = (ow, oh, sw, sh, ks) == (iw, ih, 1, 1, 1)  # a 1x1 stride-1 convolution needs no im2col
    im2col = 0 if trivial else ic * ks * os_
    outer = False
    if im2col and not dilated and oc * ic * ks < l2 // 2:  # blocking over output rows / columns for the L2
        row = 5 * (ic * ow * ks * data_size + 2 * (ic * iw + oc * ow) * data_size) + oc * ow * data_size \
            + ic * iw * data_size
        h_block, w_block = min(max(1, _div_up(l2, row)), oh), ow
        if h_block == 1:
            w_block = min(max(1, _div_up(l2, ic * ks * data_size + 2 * (ic + oc) * data_size)), ow)
        if h_block != oh:
            h_block = max(1, h_block // 4 * 4)
        if w_block != ow:
            w_block = max(1, w_block // simd_w * simd_w)
        thr_eff = 0.0
        if w_block == ow:
            while h_block > 0:
                work = mb * _div_up(oh, h_block)
                thr_eff = (work / _rnd_up(work, nthreads) + oh / _rnd_up(oh, h_block)) / 2
                if thr_eff >= 0.9:
                    break
                h_block = 0 if h_block < 4 else (h_block - 4) // 4 * 4
        if thr_eff < 0.9:
            h_block = 1
            while w_block > 0:
                work = mb * oh * _div_up(ow, w_block)
                thr_eff = (work / _rnd_up(work, nthreads) + ow / _rnd_up(ow, w_block)) / 2
                if thr_eff > 0.9:
                    break
                w_block = 0 if w_block < simd_w else (w_block - simd_w) // simd_w * simd_w
        h_block, w_block = max(1, h_block), max(1, w_block)
        inner = _div_up(os_, simd_w) * _div_up(oc, simd_w)
        oh_block, ow_block = oh, ow
        if thr_eff >= inner / _rnd_up(inner, nthreads) / 2:
            oh_block, ow_block, outer = h_block, w_block, True
        if oh_block != 1:
            ow_block = ow
        im2col = ic * ks * oh_block * ow_block
    # (without the blocking, oneDNN threads over images only where there are several: not at batch 1)
    nthr = nthreads if outer else 1
    return sum(b + BOOKING_ALIGNMENT for b in (nthr * im2col * data_size, nthr * is_ * ic * data_size) if b)
