"""Property tests: whatever the argv or the bytes in a result file, the answer is a clean one."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnbench import records
from cnnbench.cli import build_parser

TOKENS = ["list", "run", "suite", "report", "lenet5", "resnet50", "--json", "--task", "mnist", "--profile", "smoke",
          "cpu", "--epochs", "--batch-size", "--seed", "--seeds", "--archs", "--resume", "--results", "--learning-rate",
          "0", "-1", "1", "1e-3", "nan", "inf", "--", "-", "", "x" * 300]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=20)), max_size=8))
def test_cli_parsing_accepts_or_exits_2(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        assert e.code in (0, 2)  # 0 only for --help
        return
    assert args.command in {"list", "run", "suite", "report"}
    for name in ("epochs", "batch_size"):
        value = getattr(args, name, None)
        assert value is None or (isinstance(value, int) and value >= 1)
    lr = getattr(args, "learning_rate", None)
    assert lr is None or 0 < lr < float("inf")
    seed = getattr(args, "seed", 0)
    assert 0 <= seed < 2**31


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _read(tmp_path, data: bytes):
    path = tmp_path / "r.json"
    path.write_bytes(data)
    try:
        return records.read(path)
    except records.InvalidRecordError as e:
        assert str(path) in str(e)  # the message names the file
        return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected_cleanly(tmp_path, data):
    assert _read(tmp_path, data) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_arbitrary_json_is_rejected_cleanly(tmp_path, value):
    assert _read(tmp_path, json.dumps(value).encode()) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_records_are_valid_or_rejected_never_a_crash(tmp_path, smoke_record, data):
    record = json.loads(json.dumps(smoke_record))
    node = record
    while isinstance(node, dict) and node:  # walk to a random place in the record
        key = data.draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict) or data.draw(st.booleans()):
            break
        node = node[key]
    if data.draw(st.booleans()):
        del node[key]
    else:
        node[key] = data.draw(json_values)
    loaded = _read(tmp_path, json.dumps(record).encode())
    if loaded is not None:
        records.validate(loaded)
        assert loaded == record


def test_nan_and_deep_nesting_are_rejected(tmp_path, smoke_record):
    text = json.dumps(smoke_record).replace('"test_loss": ', '"test_loss": NaN, "x": ', 1)
    assert _read(tmp_path, text.encode()) is None
    assert _read(tmp_path, b"[" * 100_000 + b"]" * 100_000) is None
