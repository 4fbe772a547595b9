"""The result-record schema: what a valid record is, and that invalid files are named and skipped."""

import copy
import json
import logging

import pytest

from cnnbench import records


def test_schema_requires_the_documented_keys(smoke_record):
    for key in ("schema_version", "arch", "metrics", "params", "throughput", "dataset", "env", "started_at"):
        broken = copy.deepcopy(smoke_record)
        del broken[key]
        with pytest.raises(records.InvalidRecordError, match=key):
            records.validate(broken)


@pytest.mark.parametrize(("path", "value"), [
    (("metrics", "test_accuracy"), 1.5),
    (("params", "total"), -1),
    (("dataset", "sha256"), "not-a-digest"),
    (("env", "device", "type"), "tpu"),
    (("schema_version",), 999),
])
def test_schema_rejects_bad_values(smoke_record, path, value):
    broken = copy.deepcopy(smoke_record)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(records.InvalidRecordError):
        records.validate(broken)


def test_invalid_files_are_skipped_with_a_warning_naming_them(smoke_record, tmp_path, caplog):
    good = records.write(smoke_record, tmp_path)
    (tmp_path / "truncated.json").write_text(good.read_text()[:100])
    edited = json.loads(good.read_text()) | {"outcome": "great"}
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with caplog.at_level(logging.WARNING):
        found = [p.name for p, _ in records.iter_records(tmp_path)]
    assert found == [good.name]
    assert "truncated.json" in caplog.text and "edited.json" in caplog.text


def test_write_refuses_an_invalid_record(smoke_record, tmp_path):
    with pytest.raises(records.InvalidRecordError):
        records.write(smoke_record | {"seed": "zero"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_holds_images_out_shows_their_score_not_the_tests():
    """The console line of a settings-choosing run (``--hold-out``) shows the held-out score; the test split, which
    must not steer the choice, stays in the record."""
    from cnnbench.records import headline

    line = headline({"test_accuracy": 0.9912, "val_accuracy": 0.9876})
    assert line.startswith("held-out accuracy 0.9876") and "0.9912" not in line
    assert headline({"test_accuracy": 0.9912}) == "test accuracy 0.9912"
    # a segmentation record's validation split is its own, not held out of training: mIoU as ever
    assert headline({"miou": 0.5, "test_accuracy": 0.9, "val_accuracy": 0.8}).startswith("mIoU 0.5000")
