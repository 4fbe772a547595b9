import functools
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: CNNBENCH_FAKE_NVML=1: NVML reports an H100 (tests/fake_nvml), here and in every subprocess the tests start — the
#: suite must pass where NVML sees a GPU although TensorFlow sees none (`nox -s tests-full` runs the fast tier so)
if os.environ.get("CNNBENCH_FAKE_NVML") == "1":
    FAKE_NVML = str(Path(__file__).parent / "fake_nvml")
    sys.path.insert(0, FAKE_NVML)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [FAKE_NVML, os.environ.get("PYTHONPATH")]))

#: session fixtures worth computing once: the tests using one run on the same xdist worker (``--dist loadgroup``)
SHARED = ("smoke_record", "paper_model")


#: the longest group (the suite's kill tests, ~6 minutes) is collected first, so one worker starts it while the other
#: works through the rest, instead of it running alone at the end
FIRST = "suite"


def pytest_collection_modifyitems(items):
    for item in items:
        shared = [name for name in SHARED if name in item.fixturenames]
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    items.sort(key=lambda item: (m := item.get_closest_marker("xdist_group")) is None or m.args[0] != FIRST)


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST through the normal loader (cached in the user data dir after the first fetch)."""
    from cnnbench.data.mnist import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def smoke_record(mnist):
    """One smoke-profile LeNet-5 record, shared by the tests that only read it."""
    from cnnbench.harness import run
    from cnnbench.spec import RunConfig

    return run(RunConfig(arch="lenet5", task="mnist", profile="smoke", seed=0), verbose=0)


@pytest.fixture(scope="session")
def paper_model():
    """``paper_model(name)``: the registered model at its paper input with its registered defaults, built once per
    session (the 20 networks total about 1 G parameters; building them is much of what these tests cost)."""
    from architectures import create_model

    return functools.cache(lambda name: create_model(name))
