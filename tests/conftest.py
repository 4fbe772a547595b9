import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST through the normal loader (cached in the user data dir after the first fetch)."""
    from cnnbench.data.mnist import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def smoke_record(mnist):
    """One smoke-profile LeNet-5 record, shared by the tests that only read it."""
    from cnnbench.harness import RunConfig, run

    return run(RunConfig(arch="lenet5", task="mnist", profile="smoke", seed=0), verbose=0)
