"""A model of TensorFlow's best-fit-with-coalescing allocator (``tensorflow/core/common_runtime/bfc_allocator.cc``),
the allocator whose peak the memory probe reads (on a GPU, and on the CPU with ``TF_CPU_ALLOCATOR_USE_BFC``).

What it charges is not what a tensor needs: every request is rounded up to 256 bytes, and a request is served from
the smallest free chunk that fits, which is split only if it is at least twice the request (or would waste 128 MiB
or more) — otherwise the whole chunk counts as in use. When no free chunk fits, the allocator grabs a new region:
2 MiB at first (with growth allowed), doubled until the request fits and doubled again after each grab that did not
need to grow. A 19.5 MB kernel scratch buffer requested after the regions are full is charged as a fresh 32 MiB
region — which is how one oneDNN convolution's scratch adds 32 MiB to a measured peak (the book exercise's network).
Freed chunks merge with free neighbours of the same region.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MIN_ALLOCATION = 256
MAX_INTERNAL_FRAGMENTATION = 128 << 20
INITIAL_REGION = 2 << 20


def rounded(nbytes: int) -> int:
    return max(MIN_ALLOCATION, -(-nbytes // MIN_ALLOCATION) * MIN_ALLOCATION)


@dataclass
class _Chunk:
    addr: int
    size: int
    region: int
    in_use: bool = False
    prev: _Chunk | None = None
    next: _Chunk | None = None


class BFCAllocator:
    """``allocate(nbytes) -> handle``, ``free(handle)``; ``in_use`` and ``peak`` count whole chunks, as TF's
    ``get_memory_info`` does. ``reset_peak()`` starts a new peak from what is in use now."""

    def __init__(self, initial_region: int = INITIAL_REGION):
        self.region_bytes = rounded(initial_region)
        self.regions = 0
        self.end = 0  # the next region's address (regions never touch: no merging across them)
        self.free_chunks: list[tuple[int, int]] = []  # (size, addr), sorted: best fit = first that fits
        self.chunks: dict[int, _Chunk] = {}
        self.in_use = self.peak = 0

    def allocate(self, nbytes: int) -> int:
        need = rounded(nbytes)
        chunk = self._best_fit(need) or (self._extend(need) and self._best_fit(need))
        self._remove_free(chunk)
        if chunk.size >= 2 * need or chunk.size - need >= MAX_INTERNAL_FRAGMENTATION:
            rest = _Chunk(chunk.addr + need, chunk.size - need, chunk.region, prev=chunk, next=chunk.next)
            if chunk.next is not None:
                chunk.next.prev = rest
            chunk.next, chunk.size = rest, need
            self.chunks[rest.addr] = rest
            self._add_free(rest)
        chunk.in_use = True
        self.in_use += chunk.size
        self.peak = max(self.peak, self.in_use)
        return chunk.addr

    def free(self, handle: int) -> None:
        chunk = self.chunks[handle]
        chunk.in_use = False
        self.in_use -= chunk.size
        for neighbour in (chunk.next, chunk.prev):
            if neighbour is not None and not neighbour.in_use:
                self._remove_free(neighbour)
                first, second = (chunk, neighbour) if neighbour is chunk.next else (neighbour, chunk)
                first.size += second.size
                first.next = second.next
                if second.next is not None:
                    second.next.prev = first
                del self.chunks[second.addr]
                chunk = first
        self._add_free(chunk)

    def reset_peak(self) -> None:
        self.peak = self.in_use

    def _best_fit(self, need: int) -> _Chunk | None:
        i = bisect.bisect_left(self.free_chunks, (need, -1))
        return self.chunks[self.free_chunks[i][1]] if i < len(self.free_chunks) else None

    def _extend(self, need: int) -> bool:
        grew = False
        while need > self.region_bytes:
            self.region_bytes *= 2
            grew = True
        chunk = _Chunk(self.end, self.region_bytes, self.regions)
        self.chunks[chunk.addr] = chunk
        self._add_free(chunk)
        self.end += self.region_bytes + MIN_ALLOCATION
        self.regions += 1
        if not grew:
            self.region_bytes *= 2
        return True

    def _add_free(self, chunk: _Chunk) -> None:
        bisect.insort(self.free_chunks, (chunk.size, chunk.addr))

    def _remove_free(self, chunk: _Chunk) -> None:
        self.free_chunks.pop(bisect.bisect_left(self.free_chunks, (chunk.size, chunk.addr)))
