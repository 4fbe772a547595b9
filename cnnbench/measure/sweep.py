"""What the benchmark sweeps share: every model at a CPU-feasible size, and how a sweep's result is stored.

Each model runs at its ``cpu`` profile input size and width (segmentation models: the segmentation task's), the same
builder as everywhere, without GoogLeNet's auxiliary heads (a sweep measures the network itself). A sweep writes one
JSON result into ``results/<kind>/`` (with the environment: code sha, versions, device); ``cnnbench report`` renders
it (the memory and throughput pages).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from cnnbench._util import atomic_write
from cnnbench.environment import environment
from cnnbench.profiles import get_profile


def cpu_model(arch: str, profile: str = "cpu") -> tuple[dict, list[int] | None]:
    """Builder keywords (10 classes) and input shape a profile (the cpu one unless named) gives ``arch`` on its
    kind's task."""
    from cnnbench.tasks import home_task

    kwargs = get_profile(profile).builder_kwargs(arch, home_task(arch))
    kwargs.pop("aux_logits", None)
    shape = kwargs.pop("input_shape", None)
    return kwargs | {"classes": 10}, list(shape) if shape else None


def save(kind: str, *, started: datetime, rows: list[dict], summary: dict, results_dir, env: dict | None = None,
         **extra) -> dict:
    """Write the sweep's result file."""
    result = {"kind": kind, "started_at": started.isoformat(), "env": env or environment(), "summary": summary,
              **extra, "rows": rows}
    stamp = started.strftime("%Y%m%dT%H%M%S")
    with atomic_write(Path(results_dir) / kind.removesuffix("_sweep") / f"{kind.replace('_', '-')}.{stamp}.json") as f:
        json.dump(result, f, indent=2, allow_nan=False)
    return result
