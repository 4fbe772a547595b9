"""The segmentation task: scores on hand-made masks, the MNIST composites (deterministic, checksummed, consistent),
the TFDS path through its mock data, the model-kind checks, and every segmentation model run end to end."""


import numpy as np
import pytest

from architectures import list_models
from cnnbench import records
from cnnbench.data.segmentation import INK, composites, mnist_composites
from cnnbench.harness import run
from cnnbench.metrics import confusion_matrix, segmentation_scores
from cnnbench.profiles import get_profile
from cnnbench.spec import RunConfig, resolve

TRUTH = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [2, 2, 2, 0]])
GUESS = np.array([[0, 1, 1, 1],
                  [0, 0, 1, 0],
                  [2, 2, 0, 0]])


def test_iou_on_hand_made_masks():
    confusion = confusion_matrix(TRUTH, GUESS, 3)
    assert confusion.tolist() == [[4, 1, 0], [1, 3, 0], [1, 0, 2]]
    s = segmentation_scores(confusion, ["bg", "a", "b"])
    # class 0: 4 hits, 5 true, 6 predicted → 4 / 7; class 1: 3 / (4 + 4 - 3) = 3 / 5; class 2: 2 / 3
    assert s["per_class_iou"] == pytest.approx({"bg": 4 / 7, "a": 3 / 5, "b": 2 / 3})
    assert s["miou"] == pytest.approx((4 / 7 + 3 / 5 + 2 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(9 / 12)
    assert s["mean_accuracy"] == pytest.approx((4 / 5 + 3 / 4 + 2 / 3) / 3)
    assert s["fw_iou"] == pytest.approx(5 / 12 * 4 / 7 + 4 / 12 * 3 / 5 + 3 / 12 * 2 / 3)


def test_perfect_prediction_and_absent_classes():
    s = segmentation_scores(confusion_matrix(TRUTH, TRUTH, 5))
    assert s["miou"] == s["pixel_accuracy"] == 1.0
    assert s["per_class_iou"]["3"] is None and s["per_class_iou"]["4"] is None  # in neither: left out of the mean
    wrong = segmentation_scores(confusion_matrix(TRUTH, np.full_like(TRUTH, 3), 4))
    assert wrong["miou"] == 0.0 and wrong["per_class_iou"]["3"] == 0.0  # predicted only: IoU 0, counted


def test_void_labels_are_ignored():
    truth = TRUTH.copy()
    truth[0, 0] = 255
    assert confusion_matrix(truth, GUESS, 3).sum() == TRUTH.size - 1


def test_composite_masks_label_each_inked_pixel_with_its_digit():
    rng = np.random.default_rng(0)
    digits = np.zeros((2, 28, 28), np.uint8)
    digits[0, 5:10, 5:10], digits[1, 0:3, 0:3] = 200, 100  # a "digit" with ink, one too faint to count
    images, masks = composites(digits, np.array([7, 3]), 50, (40, 40), rng=rng)
    assert images.shape == masks.shape == (50, 40, 40) and images.dtype == masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 8}  # class = digit + 1; faint strokes stay background
    assert ((masks > 0) == (images >= INK)).all()
    assert (images[masks == 8] == 200).all()


def test_mnist_composites_are_deterministic_and_checksummed(mnist):
    sizes = {"train": 8, "val": 4, "test": 4}
    first, again = mnist_composites((40, 48), sizes), mnist_composites((40, 48), sizes)
    # Real MNIST (verified by its own checksums) + the fixed layout seed: the same bytes everywhere.
    assert first["identity"]["sha256"] == again["identity"]["sha256"] == (
        "75960248e539cb77056828bcef0dc566b5605f4e413628001ee9913ff4b3ca03")
    for split in ("train", "val", "test"):
        assert all((a == b).all() for a, b in zip(first[split], again[split], strict=True))
    assert mnist_composites((40, 48), sizes, seed=1)["identity"]["sha256"] != first["identity"]["sha256"]
    bigger = mnist_composites((40, 48), sizes | {"test": 6})  # one stream per split: train and val unchanged
    assert (bigger["train"][0] == first["train"][0]).all() and (bigger["val"][1] == first["val"][1]).all()
    assert first["classes"][0] == "background" and len(first["classes"]) == 11
    images, masks = first["test"]
    assert ((masks > 0) == (images >= INK)).all()


def test_task_pipelines_and_dataset_identity(mnist):
    from cnnbench.tasks.segmentation import SegmentationTask

    data = SegmentationTask().prepare(input_shape=(64, 64, 3), batch_size=16, seed=0, train_subset=40,
                                      test_subset=20)
    x, y = next(iter(data.train))
    assert x.shape == (16, 64, 64, 3) and y.shape == (16, 64, 64) and y.dtype.name == "int32"
    assert float(np.max(x)) <= 1.0 and (x[..., 0].numpy() == x[..., 2].numpy()).all()  # grey replicated
    d = data.dataset
    assert (d["name"], d["n_train"], d["n_val"], d["n_test"], data.num_classes) == ("mnist_composites", 40, 4, 20, 11)
    assert "generated layouts" in d["note"] and len(d["sha256"]) == 64
    assert sum(d["train_pixel_frequency"]) == pytest.approx(1, abs=1e-4)


def test_oxford_pet_trimaps_through_tfds_mock_data():
    import tensorflow_datasets as tfds

    from cnnbench.tasks.segmentation import SegmentationTask

    with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
        data = SegmentationTask(source="tfds:oxford_iiit_pet").prepare(input_shape=(32, 32, 3), batch_size=8,
                                                                       seed=0)
    assert data.dataset["classes"] == ["background", "pet", "border"] and data.num_classes == 3
    x, y = next(iter(data.train))
    assert x.shape == (8, 32, 32, 3) and y.shape == (8, 32, 32)
    assert set(np.unique(y.numpy())) <= {0, 1, 2}
    assert (data.n_train, data.dataset["n_val"], data.n_test) == (27, 3, 30)


def test_models_must_match_the_task_kind():
    with pytest.raises(ValueError, match="fcn8s_vgg16"):
        resolve(RunConfig(arch="lenet5", task="segmentation"))
    with pytest.raises(ValueError, match="segmentation model"):
        resolve(RunConfig(arch="fcn8s_vgg16", task="mnist"))


def test_suite_plans_segmentation_models_only():
    from cnnbench.suite import plan

    cells = plan(profile="smoke", tasks=["mnist", "segmentation"], archs=["fcn8s_*", "lenet5"], seeds=[0])
    assert {(c.task, c.arch) for c in cells} == {("mnist", "lenet5"), ("segmentation", "fcn8s_vgg16"),
                                                 ("segmentation", "fcn8s_resnet50"),
                                                 ("segmentation", "fcn8s_xception")}
    with pytest.raises(ValueError, match="no model the task"):
        plan(profile="smoke", tasks=["mnist"], archs=["fcn8s_vgg16"], seeds=[0])


def assert_learns_from_pixels(record: dict) -> None:
    """Learning, not just running: the test pixels are predicted better — test loss at most 0.95 of it — than by the
    training pixels' class frequencies alone (their entropy, 0.31 on 95 %-background canvases), which is all a
    network can learn from inputs that carry nothing (on zeroed canvases: 1.47 at smoke scale)."""
    f = np.asarray(record["dataset"]["train_pixel_frequency"])
    entropy = float(-(f[f > 0] * np.log(f[f > 0])).sum())
    assert record["metrics"]["test_loss"] < 0.95 * entropy, (record["metrics"]["test_loss"], entropy)


#: A stride-32 score map of a 64x64 canvas is 2x2: FCN-32s labels every pixel background at every budget recorded
#: (README, Segmentation) and stays above the frequencies' entropy at smoke scale (test loss 0.47; 0.12 against 0.10
#: at 128x128). Strict: should it ever learn the digits, this turns red and the README needs a new sentence.
COARSE = pytest.mark.xfail(strict=True, reason="FCN-32s's 2x2 score map of a 64x64 canvas misses 28-px digits")


@pytest.mark.full
@pytest.mark.parametrize("arch", [pytest.param(a, marks=COARSE) if a == "fcn32s_vgg16" else a
                                  for a in list_models(kind="segmentation") if a != "fcn8s_vgg16"])
def test_every_segmentation_model_learns_at_smoke_scale(arch, mnist):
    # Scores only: the timing and the memory probe are exercised once for this kind (the CLI run below).
    r = run(RunConfig(arch=arch, task="segmentation", profile="smoke", seed=0, measure_memory=False,
                      measure_throughput=False), verbose=0)
    assert r["config"]["input_shape"] == list(get_profile("smoke").setting(arch, "segmentation")["input_shape"])
    assert r["dataset"]["num_classes"] == 11
    assert_learns_from_pixels(r)


def test_segmentation_run_end_to_end_through_the_cli_and_report(mnist, tmp_path, capsys):
    import json

    from cnnbench.cli import main

    results = tmp_path / "results"
    assert main(["run", "fcn8s_vgg16", "--task", "segmentation", "--profile", "smoke", "--results", str(results)]) == 0
    assert "mIoU" in capsys.readouterr().out
    (path,) = results.glob("fcn8s_vgg16.segmentation.smoke.seed0.*.json")
    r = json.loads(path.read_text())
    records.validate(r)
    m = r["metrics"]
    assert_learns_from_pixels(r)
    assert m["test_accuracy"] == m["pixel_accuracy"]
    assert set(m["per_class_iou"]) == {"background", *map(str, range(10))}
    assert np.array(m["confusion_matrix"]).sum() == 64 * 64 * 64  # every test pixel scored once
    # the sample masks the report draws: the first test canvases, decoded back to the classes the confusion counts
    assert len(m["samples"]) == 3
    for sample in m["samples"]:
        truth = np.array([[int(c, 36) for c in row] for row in sample["truth"]])
        assert truth.shape == (64, 64) and truth.max() <= 10 and (truth > 0).any()  # digits on every canvas
        assert all(len(sample[k]) == 64 and len(sample[k][0]) == 64 for k in ("input", "predicted"))
    assert r["dataset"]["name"] == "mnist_composites" and r["model"]["kind"] == "segmentation"
    assert r["flops"]["macs"] > 0 and not r["flops"]["uncounted"]
    assert r["throughput"]["train_images_per_s"] > 0
    assert r["memory"]["measured_peak_bytes"] > 0, r["memory"].get("measure_error")
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "reports")]) == 0
    page = (tmp_path / "reports" / "index.html").read_text()
    assert f"{100 * m['miou']:.2f} (1)" in page and "generated layouts" in page
