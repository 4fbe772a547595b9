"""The code fingerprint (``env.code_sha256``) covers what determines a record's numbers and nothing else: a refactor
of the CLI, the report or the suite must not make ``--resume`` re-measure every committed record."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cnnbench.environment import FINGERPRINTED, REPO_ROOT, code_fingerprint


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the repository's sources (the fingerprint of a tree is computed from its files only)."""
    root = tmp_path_factory.mktemp("tree")
    for d in ("architectures", "cnnbench"):
        shutil.copytree(REPO_ROOT / d, root / d, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def fingerprint(root: Path) -> str:
    return code_fingerprint.__wrapped__(root)  # uncached: the tree changes between calls


@pytest.mark.parametrize("path, fingerprinted", [
    ("cnnbench/cli.py", False), ("cnnbench/report/build.py", False), ("cnnbench/suite.py", False),
    ("cnnbench/cluster.py", False), ("cnnbench/measure/throughput_sweep.py", False),
    ("architectures/resnet.py", True), ("cnnbench/training.py", True), ("cnnbench/profiles.py", False),
    ("cnnbench/tasks/classification.py", True), ("cnnbench/data/mnist.py", True),
])
def test_fingerprint_changes_with_the_code_that_determines_numbers_only(tree, path, fingerprinted):
    before = fingerprint(tree)
    file = tree / path
    original = file.read_bytes()
    try:
        file.write_bytes(original + b"\n# an edit\n")
        assert (fingerprint(tree) != before) == fingerprinted
    finally:
        file.write_bytes(original)
    assert fingerprint(tree) == before


def test_fingerprint_of_this_checkout_is_the_copys(tree):
    assert fingerprint(tree) == code_fingerprint() and all((REPO_ROOT / p).exists() for p in FINGERPRINTED)


def test_a_models_fingerprint_covers_its_own_builders_only(tree):
    """A record carries its model's fingerprint (``model_code_sha256``): its module and what that imports change it,
    another network's module does not; the FCNs build their backbones by name, so every module counts for them."""
    before = {arch: fingerprint_of(tree, arch) for arch in ("alexnet", "resnet50", "fcn32s_vgg16")}
    for path, changed in [("architectures/alexnet.py", {"alexnet", "fcn32s_vgg16"}),
                          ("architectures/_layers.py", {"alexnet", "resnet50", "fcn32s_vgg16"}),
                          ("cnnbench/training.py", {"alexnet", "resnet50", "fcn32s_vgg16"}),
                          ("cnnbench/suite.py", set())]:
        file = tree / path
        original = file.read_bytes()
        try:
            file.write_bytes(original + b"\n# an edit\n")
            assert {arch for arch, fp in before.items() if fingerprint_of(tree, arch) != fp} == changed, path
        finally:
            file.write_bytes(original)
    assert fingerprint_of(tree, "fcn32s_vgg16") == fingerprint(tree)  # the whole package: the tree's own


def fingerprint_of(root: Path, arch: str) -> str:
    return code_fingerprint.__wrapped__(root, arch)
