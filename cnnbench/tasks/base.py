"""The task interface the harness, the suite and the report program against: a base class whose optional hooks
have defaults (as scikit-learn's asv ``Estimator`` declares ``make_data`` and ``skip``), so nothing probes a task with
``hasattr``, and whose class attributes say how the task is presented, so no other module compares its name.

A task's batches come from ``cnnbench.data.pipeline.batched`` (tf.data on TensorFlow, a ``keras.utils.PyDataset``
elsewhere). Task modules import TensorFlow and Keras on first use (``lazy``): the report reads a task's presentation
without starting either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import keras



@dataclass
class TaskData:
    train: Any  # a tf.data.Dataset on TensorFlow, else data.batches.ArrayBatches (``data.pipeline``)
    test: Any
    n_train: int
    n_test: int
    num_classes: int
    #: dataset identity for the record: name, sha256, source, n_train, n_test.
    dataset: dict[str, Any]
    #: how images were adapted to the model input (resize/pad, channels), for the record.
    adaptation: dict[str, Any] = field(default_factory=dict)
    #: a validation split, held out of the training images (early stopping, a recipe's choices)
    val: Any = None
    batch_size: int | None = None


#: every task class that names itself, by name (``Task.__init_subclass__``): defining one registers it
TASKS: dict[str, type[Task]] = {}


class Task:
    """Where data comes from, how an architecture's input is adapted to it, how results are judged and shown.
    A subclass that sets ``name`` is registered under it (``TASKS``); the CLI, the suite and the report list it."""

    name: ClassVar[str]
    #: the kind of model it runs (the registry's ``kind``): "classification" or "segmentation"
    kind: ClassVar[str] = "classification"
    #: the leaderboard's heading (empty: the task's name)
    title: ClassVar[str] = ""
    loss: ClassVar[str] = "sparse_categorical_crossentropy"
    metrics: ClassVar[list[str]] = ["accuracy"]
    #: the record metric the leaderboard ranks by, and its column's header
    score: ClassVar[str] = "test_accuracy"
    score_label: ClassVar[str] = "test accuracy (%)"
    #: the leaderboard's columns after the score (names the report knows: cnnbench.report.build.TASK_COLUMNS)
    columns: ClassVar[tuple[str, ...]] = ()
    #: the figures the task's section shows after the common ones (cnnbench.report.build.TASK_FIGURES)
    figures: ClassVar[tuple[str, ...]] = ()
    #: time to accuracy (DAWNBench, MLPerf): the test accuracy whose first epoch is recorded; None: not timed
    target_accuracy: ClassVar[float | None] = None
    #: whether ``prepare`` takes ``validation_images`` (held out of the training split): what non-plain recipes need
    holds_out_validation: ClassVar[bool] = False
    #: whether the task trains by its own recipe (``train``) instead of the harness's from-scratch recipes
    trains_itself: ClassVar[bool] = False
    #: the registered models a suite runs on this task when none are named; None: every model of its ``kind``
    default_archs: ClassVar[tuple[str, ...] | None] = None
    #: whether ``--dataset`` may choose the task's data source (MNIST: its own data only)
    takes_dataset: ClassVar[bool] = True
    #: whether the task starts from pretrained weights (``--weights``)
    takes_weights: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in TASKS:
                raise ValueError(f"task {cls.name!r} defined twice: {TASKS[cls.name].__qualname__}, {cls.__qualname__}")
            TASKS[cls.name] = cls

    def __init__(self, source: str | None = None):
        self.source = source

    def verify_data(self, data_dir: str | None) -> dict[str, Any]:
        """Fetch (if needed) and verify the task's data; return its identity. Raises ChecksumError."""
        raise NotImplementedError

    def prepare(self, *, input_shape: tuple[int, int, int], batch_size: int, seed: int,
                train_subset: int | None, test_subset: int | None, data_dir: str | None,
                **options) -> TaskData:
        raise NotImplementedError

    def train(self, *, arch: str, weights: dict, model_kwargs: dict, data: TaskData, epochs: int,
              learning_rate: float, verbose, precise_bn_images: int) -> tuple[keras.Model, dict]:
        """The task's own recipe (where ``trains_itself``): the trained model and its metrics."""
        raise NotImplementedError(f"the {self.name} task trains by the harness's recipes")

    def evaluate(self, model: keras.Model, data: TaskData) -> dict:
        """Scores beyond the harness's test accuracy and loss (segmentation: mIoU, per-class IoU, ...)."""
        return {}
