"""Architecture cards: each registered network at its paper input, as the suite counts it.

A card is a result file (``results/architectures/<name>.json``) with the registry's metadata (paper, year, what it
introduced, the variant built, the builder's notes on deviations), the parameters and multiply-accumulates the suite
counts at the paper input, and the layer table (name, type, output shape, parameters, MACs) — so the report's
architecture pages, like every other page, read only result files.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

from cnnbench._util import atomic_write

KIND = "architecture_card"


def card(arch: str) -> dict:
    """Build ``arch`` at its paper input (registered defaults) and count it; the environment says by which code."""
    import architectures
    from cnnbench.environment import environment
    from cnnbench.measure.flops import count_flops
    from cnnbench.measure.params import count_params

    info = architectures.model_info(arch)
    model = architectures.create_model(arch)
    flops = count_flops(model)
    return {
        "kind": KIND,
        "arch": arch,
        "started_at": datetime.now(UTC).isoformat(),
        "env": environment(),
        "model": info.as_dict() | {"doc": inspect.getdoc(info.builder) or "", "defaults": info.defaults},
        "input_shape": list(info.default_input_shape),
        "params": count_params(model),
        "flops": {k: v for k, v in flops.items() if k != "per_layer"},
        "layers": flops["per_layer"],
    }


def write_cards(pattern: str | None, results_dir: str | Path) -> list[Path]:
    """One card per registered model matching ``pattern``, written atomically into ``results_dir/architectures``."""
    import keras

    import architectures

    paths = []
    for arch in architectures.list_models(pattern):
        keras.backend.clear_session()
        path = Path(results_dir) / "architectures" / f"{arch}.json"
        with atomic_write(path) as f:
            json.dump(card(arch), f, indent=1, allow_nan=False)
            f.write("\n")
        paths.append(path)
    return paths


def read_cards(results_dir: str | Path) -> dict[str, dict]:
    """Every card under ``results_dir/architectures``, by architecture name."""
    cards = {}
    for path in sorted(Path(results_dir, "architectures").glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("kind") == KIND:
            cards[data["arch"]] = data | {"file": f"architectures/{path.name}"}
    return cards
