"""Tasks: where data comes from, how an architecture's input is adapted to it, and how results are judged."""

from __future__ import annotations

from cnnbench._util import lookup
from cnnbench.tasks.base import Task, TaskData
from cnnbench.tasks.classification import FashionMnistTask, MnistTask
from cnnbench.tasks.segmentation import SegmentationTask
from cnnbench.tasks.transfer import TransferTask

TASKS: dict[str, type[Task]] = {"mnist": MnistTask, "fashion_mnist": FashionMnistTask, "transfer": TransferTask,
                                "segmentation": SegmentationTask}


#: the task that sizes a model of each kind when no task is named (sweeps, tests)
HOME_TASK = {"classification": "mnist", "segmentation": "segmentation"}


def home_task(arch: str) -> str:
    """The task a registered model is sized for by default: MNIST for classifiers, segmentation for segmenters."""
    import architectures

    return HOME_TASK[architectures.model_info(arch).kind]


def get_task(name: str, **options) -> Task:
    """A task by name; ``options`` (e.g. the transfer task's ``source``) go to its constructor."""
    return lookup(TASKS, name, "task")(**options)


__all__ = ["TASKS", "Task", "TaskData", "get_task", "home_task"]
