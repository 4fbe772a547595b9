"""Tasks: where data comes from, how an architecture's input is adapted to it, and how results are judged.

Importing this package imports every task module, which registers its tasks (``TASKS``, in definition order).
"""

from __future__ import annotations

from cnnbench._util import lookup
from cnnbench.tasks import classification, segmentation, transfer  # noqa: F401  (registers)
from cnnbench.tasks.base import TASKS, Task, TaskData

#: the tasks the full suites run (``nox -s bench-cpu``, ``bench-gpu``), in the order the report shows them; the
#: others (Fashion-MNIST: the ablations') after them
SUITE_TASKS = ("mnist", "transfer", "segmentation")

#: the task that sizes a model of each kind when no task is named (sweeps, tests)
HOME_TASK = {"classification": "mnist", "segmentation": "segmentation"}


def home_task(arch: str) -> str:
    """The task a registered model is sized for by default: MNIST for classifiers, segmentation for segmenters."""
    import architectures

    return HOME_TASK[architectures.model_info(arch).kind]


def get_task(name: str, **options) -> Task:
    """A task by name; ``options`` (e.g. the transfer task's ``source``) go to its constructor."""
    return lookup(TASKS, name, "task")(**options)


__all__ = ["SUITE_TASKS", "TASKS", "Task", "TaskData", "get_task", "home_task"]
