"""Result records: one JSON file per run, a versioned schema, atomic writes, validated reads.

Records are the only thing reports and asv read. Numbers are stored raw (unrounded, unit in the key).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from cnnbench._util import atomic_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_num = {"type": "number"}
_int = {"type": "integer", "minimum": 0}
_str = {"type": "string"}
_nstr = {"type": ["string", "null"]}
_name = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}  # also part of the file name: no paths

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "arch", "task", "profile", "seed", "outcome", "config", "env", "started_at",
                 "duration_s"],
    # A finished run carries its measurements; a failed one (oom, diverged, error) says what went wrong instead.
    "if": {"properties": {"outcome": {"const": "ok"}}},
    "then": {"required": ["metrics", "params", "throughput", "memory", "dataset"],
             "properties": {"config": {"required": ["epochs", "batch_size", "input_shape", "model_kwargs"]},
                            # a finished run has its scores (NaN and inf never parse: see read())
                            "metrics": {"properties": {"test_accuracy": _num, "miou": _num}}}},
    "else": {"required": ["error"]},
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "arch": _name,
        "task": _name,
        "profile": _name,
        "seed": {"type": "integer"},
        "outcome": {"enum": ["ok", "oom", "diverged", "error"]},
        "config": {"type": "object"},
        "error": {"type": "object", "required": ["type", "message"],
                  "properties": {"type": _str, "message": _str, "step": _int}},
        "metrics": {
            "type": "object",
            "required": ["test_accuracy"],
            "properties": {"test_accuracy": {"type": ["number", "null"], "minimum": 0, "maximum": 1}},
        },
        "params": {"type": "object", "required": ["total", "trainable"],
                   "properties": {"total": _int, "trainable": _int}},
        # null when the run skipped the timing (--no-measure-throughput)
        "throughput": {"type": ["object", "null"],
                       "required": ["batch_size", "train_images_per_s", "infer_images_per_s"],
                       "properties": {"batch_size": _int, "train_images_per_s": _num, "infer_images_per_s": _num}},
        # measured_peak_bytes is null when the run skipped the measurement or it failed (measure_error says why)
        "memory": {"type": "object", "required": ["predicted_bytes", "breakdown"],
                   "properties": {"predicted_bytes": _int, "measured_peak_bytes": {"type": ["integer", "null"]},
                                  "relative_error": {"type": ["number", "null"]}}},
        "dataset": {"type": "object", "required": ["name", "sha256", "n_train", "n_test"],
                    "properties": {"name": _str, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                   "n_train": _int, "n_test": _int}},
        "env": {
            "type": "object",
            "required": ["python", "tensorflow", "keras", "numpy", "device", "git"],
            "properties": {
                "device": {"type": "object", "required": ["type", "name"],
                           "properties": {"type": {"enum": ["cpu", "gpu"]}, "name": _str}},
                "git": {"type": "object", "required": ["sha", "dirty"],
                        "properties": {"sha": _nstr, "dirty": {"type": ["boolean", "null"]}}},
                # where and by which code (records before 2026-11-26 have neither: their machine is derived from
                # `device`, and no code fingerprint makes them count as done for a resumed suite)
                "machine": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string",
                                                                                        "pattern": "^[a-z0-9-]+$"}}},
                "code_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                # the model's own (its builders' modules; records before 2026-12-08 whose code was current then
                # were given theirs, the others have none)
                "model_code_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                # the training, data and scoring code alone, which the report compares across a table's models
                "shared_code_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "started_at": {"type": "string", "format": "date-time"},
        "duration_s": {"type": "number", "minimum": 0},
    },
}


class InvalidRecordError(ValueError):
    """A result file that is not valid JSON or does not match the schema."""


def validate(record: dict) -> None:
    try:
        jsonschema.validate(record, SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "<root>"
        raise InvalidRecordError(f"{where}: {e.message}") from None


def record_name(record: dict) -> str:
    """``<arch>.<task>.<profile>.seed<S>.<UTC start to the microsecond>.<pid>.json``: unique across processes."""
    stamp = record["started_at"].replace("-", "").replace(":", "").replace("+0000", "").split("+")[0]
    return f"{record['arch']}.{record['task']}.{record['profile']}.seed{record['seed']}.{stamp}.{os.getpid()}.json"


def write(record: dict, results_dir: str | os.PathLike) -> Path:
    """Validate, then write atomically (temp file in the same dir, fsync, rename): a reader sees all or nothing."""
    validate(record)
    path = Path(results_dir) / record_name(record)
    with atomic_write(path) as f:
        json.dump(record, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    return path


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (records are written with allow_nan=False)")


def read(path: str | os.PathLike) -> dict:
    """Load and validate one record; :class:`InvalidRecordError` names the file and the problem."""
    try:
        record = json.loads(Path(path).read_text(), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidRecordError(f"{path}: not a readable JSON record ({e})") from None
    try:
        validate(record)
    except InvalidRecordError as e:
        raise InvalidRecordError(f"{path}: {e}") from None
    return record


def iter_records(results_dir: str | os.PathLike) -> Iterator[tuple[Path, dict]]:
    """Every valid run record in ``results_dir`` (sub-folders hold other kinds of results, e.g. ``memory/``);
    invalid files are skipped with a warning that names them."""
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            yield path, read(path)
        except InvalidRecordError as e:
            log.warning("skipping invalid result file %s", e)


def code_version(record: dict) -> str | None:
    """The fingerprint of the code that determined a record's numbers: its model's (``env.model_code_sha256``), else
    the whole tree's (``env.code_sha256``, which no current record's model fingerprint equals)."""
    env = record["env"]
    return env.get("model_code_sha256") or env.get("code_sha256")


def headline(metrics: dict) -> str:
    """The one score a console line shows: mean IoU for segmentation; for a classifier that held training images out
    (a run that chooses settings, which the test split must not steer: its score stays in the record) their
    accuracy; else test accuracy."""
    if "miou" in metrics:
        return f"mIoU {metrics['miou']:.4f} (pixel accuracy {metrics['test_accuracy']:.4f})"
    if "val_accuracy" in metrics:
        return f"held-out accuracy {metrics['val_accuracy']:.4f} (test scores in the record, not for choosing)"
    return f"test accuracy {metrics['test_accuracy']:.4f}"


def variant(row: dict) -> str:
    """A sweep row's precision and compilation as a label: ' mixed_float16+XLA' and the like; '' for the default
    float32 without XLA (and rows before variants)."""
    precision, jit = row.get("precision", "float32"), row.get("jit", False)
    return "" if (precision, jit) == ("float32", False) else f" {precision}{'+XLA' if jit else ''}"
