"""Tasks: where data comes from, how an architecture's input is adapted to it, and how results are judged."""

from __future__ import annotations

from cnnbench._util import lookup
from cnnbench.tasks.base import Task, TaskData
from cnnbench.tasks.classification import MnistTask
from cnnbench.tasks.segmentation import SegmentationTask
from cnnbench.tasks.transfer import TransferTask

TASKS: dict[str, type[Task]] = {"mnist": MnistTask, "transfer": TransferTask, "segmentation": SegmentationTask}


def get_task(name: str, **options) -> Task:
    """A task by name; ``options`` (e.g. the transfer task's ``source``) go to its constructor."""
    return lookup(TASKS, name, "task")(**options)


__all__ = ["TASKS", "Task", "TaskData", "get_task"]
