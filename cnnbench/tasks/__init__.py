"""Tasks: where data comes from, how an architecture's input is adapted to it, and how results are judged."""

from __future__ import annotations

from cnnbench._util import lookup
from cnnbench.tasks.base import Task, TaskData
from cnnbench.tasks.classification import MnistTask

TASKS: dict[str, type[Task]] = {"mnist": MnistTask}


def get_task(name: str) -> Task:
    return lookup(TASKS, name, "task")()


__all__ = ["TASKS", "Task", "TaskData", "get_task"]
