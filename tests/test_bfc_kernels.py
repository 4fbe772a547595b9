"""The allocator model and the kernels' scratch rule, against what TensorFlow's BFC allocator and oneDNN did here."""

import pytest

from cnnbench.measure.bfc import BFCAllocator
from cnnbench.measure.graph_memory import Node, simulate
from cnnbench.measure.kernels import CpuKernels, _isa, _l2_bytes, conv_scratch_bytes

MiB = 1 << 20


def test_requests_are_rounded_to_256_bytes():
    bfc = BFCAllocator()
    bfc.allocate(1)
    bfc.allocate(257)
    assert bfc.in_use == 256 + 512 and bfc.regions == 1


def test_a_large_request_takes_a_fresh_region_whole_and_a_smaller_one_splits_it():
    # the book exercise's second convolution: 19,500,256 bytes of oneDNN scratch, charged as a 32 MiB region (the
    # region doubles from 2 MiB until the request fits, and 32 MiB is less than twice the request: not split)
    bfc = BFCAllocator()
    scratch = bfc.allocate(19_500_256)
    assert bfc.in_use == 32 * MiB and bfc.peak == 32 * MiB
    bfc.free(scratch)
    bfc.allocate(9_840_256)  # the third convolution's: at least twice as small, so the free region splits
    assert bfc.in_use == 9_840_384 and bfc.regions == 1
    bfc.reset_peak()
    assert bfc.peak == 9_840_384


def test_freed_neighbours_merge_and_regions_grow_by_doubling():
    bfc = BFCAllocator()
    a, b = bfc.allocate(MiB // 2), bfc.allocate(MiB // 2)
    bfc.allocate(MiB // 2)
    bfc.free(a)
    bfc.free(b)  # a and b merge into one free 1 MiB chunk, which a 1 MiB request then fits
    bfc.allocate(MiB)
    assert bfc.regions == 1 and bfc.in_use == MiB + MiB // 2
    bfc.allocate(MiB)  # 0.5 MiB left in the 2 MiB region: a new region, 4 MiB (doubled after a grab that fit)
    assert bfc.regions == 2 and bfc.region_bytes == 8 * MiB and bfc.in_use == 2 * MiB + MiB // 2


CPU = CpuKernels(onednn=True, threads=2, l2_bytes=512 << 10)


@pytest.mark.parametrize(("batch", "in_hw", "in_c", "out_hw", "out_c", "k", "s", "measured"), [
    # the book exercise's three convolutions (200x300x3 → 100 → 200 → 400 maps, 3x3, stride 2), batch 1: gemm
    (1, (200, 300), 3, (100, 150), 100, 3, 2, 1_459_264),
    (1, (100, 150), 100, (50, 75), 200, 3, 2, 19_500_256),
    (1, (50, 75), 200, (25, 38), 400, 3, 2, 9_840_256),
    # 24x36 inputs at batch 1: each branch of oneDNN's blocking heuristic (row blocks, column blocks, none)
    (1, (24, 36), 32, (24, 36), 100, 3, 1, 304_384),
    (1, (24, 36), 100, (24, 36), 100, 3, 1, 3_456_256),
    (1, (24, 36), 32, (12, 18), 32, 1, 2, 226_048),
    (1, (24, 36), 32, (24, 36), 32, 1, 1, 110_720),  # 1x1 stride 1: no im2col, the transposed input only
    (1, (24, 36), 1, (12, 18), 32, 3, 2, 8_464),
    # larger batches: brgconv, a few per-thread descriptors whatever the shape
    (2, (24, 36), 100, (12, 18), 100, 3, 2, 12_336),
    (4, (24, 36), 3, (24, 36), 32, 1, 1, 12_336),
])
def test_convolution_scratch_equals_what_onednn_took_from_the_allocator(batch, in_hw, in_c, out_hw, out_c, k, s,
                                                                         measured):
    # measured: the "temp" allocation of each forward convolution in TensorFlow's profiler trace, TF 2.21 with
    # oneDNN 3.7 on this 2-core AVX2 machine (512 KiB L2 a core)
    assert conv_scratch_bytes(batch=batch, in_hw=in_hw, in_c=in_c, out_hw=out_hw, out_c=out_c, kernel=(k, k),
                              strides=(s, s), cpu=CPU) == measured
    without = CpuKernels(onednn=False, threads=2, l2_bytes=512 << 10)
    assert conv_scratch_bytes(batch=batch, in_hw=in_hw, in_c=in_c, out_hw=out_hw, out_c=out_c, kernel=(k, k),
                              strides=(s, s), cpu=without) == 0
    # on a 2-core AVX-512 Xeon the same oneDNN ran every one of these as brgconv and took no temp allocation
    avx512 = CpuKernels(onednn=True, threads=2, l2_bytes=2 << 20, isa="avx512_core")
    assert conv_scratch_bytes(batch=batch, in_hw=in_hw, in_c=in_c, out_hw=out_hw, out_c=out_c, kernel=(k, k),
                              strides=(s, s), cpu=avx512) == 0


def test_the_instruction_set_is_read_from_the_cpu_flags_and_onednns_cap(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert _isa(cpuinfo) == "avx2"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512dq avx512bw avx512vl amx_tile\n")
    assert _isa(cpuinfo) == "avx512_core"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert _isa(cpuinfo) == "avx2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert _isa(cpuinfo) == "avx512_core"
    assert _isa(tmp_path / "missing") == "avx2"


def test_the_l2_size_comes_from_sysfs(tmp_path):
    for index, level, size in (("index0", "1", "32K"), ("index2", "2", "1M"), ("index3", "3", "32768K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "level").write_text(level + "\n")
        (tmp_path / index / "size").write_text(size + "\n")
    assert _l2_bytes(tmp_path) == 1 << 20
    assert _l2_bytes(tmp_path / "missing") == 512 << 10


def test_scratch_is_alive_only_while_its_op_runs_and_the_allocator_replay_charges_chunks():
    MB = 1_000_000
    nodes = [Node("x", "Placeholder", [], [MB]), Node("a", "Conv2D", ["x:0"], [4 * MB], scratch_bytes=3 * MB),
             Node("b", "Conv2D", ["a:0"], [2 * MB], scratch_bytes=19_500_256), Node("c", "MatMul", ["b:0"], [MB])]
    sim = simulate(nodes, keep=frozenset({"c:0"}), allocator_before=[MB])
    assert sim.transient_peak_bytes == 4 * MB + 2 * MB + 19_500_256 and sim.peak_at == "b"
    assert ("b (scratch)", 19_500_256) in sim.alive_at_peak
    # through the allocator: the variable (1 MB, rounded up to 1,000,192) and x fill the first 2 MiB region (x gets
    # the rest whole, 1,096,960: not twice its size). Warm-up step: a takes a fresh 4 MiB region whole, b 2,000,128
    # of an 8 MiB one (split), b's scratch a fresh 32 MiB region (grown from 16 MiB) whole; c, the output, splits
    # a's freed 4 MiB chunk and is still held by the caller through the next step. There a splits the 8 MiB region
    # (free again), b takes the 3,194,112 B left of the 4 MiB one whole (less than twice its size), the scratch the
    # 32 MiB region
    assert sim.allocator_peak_bytes == 2 * MiB + 1_000_192 + 4 * MB + (4 * MiB - 1_000_192) + 32 * MiB
