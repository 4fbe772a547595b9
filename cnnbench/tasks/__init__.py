"""Tasks: where data comes from, how an architecture's input is adapted to it, and how results are judged."""

from __future__ import annotations

import difflib

from cnnbench.tasks.base import Task, TaskData
from cnnbench.tasks.classification import MnistTask

TASKS: dict[str, type[Task]] = {"mnist": MnistTask}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown task {name!r}{hint} (known: {', '.join(TASKS)})") from None


__all__ = ["TASKS", "Task", "TaskData", "get_task"]
