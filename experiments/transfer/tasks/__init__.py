"""The four tasks (NER, POS, TyDiQA, XNLI) behind one interface; ``get_task(name)`` returns one."""
from __future__ import annotations

from .base import DEV_SELECT_FRACTION, Task, in_selection_part
from .encoded import EncodedSet
from .ner import NERTask
from .pos import POSTask
from .tydiqa import TyDiQATask
from .xnli import XNLITask

_TASK_CLASSES = {"ner": NERTask, "pos": POSTask, "tydiqa": TyDiQATask, "xnli": XNLITask}


def get_task(name: str) -> Task:
    """A new task object by name (one of ``config.TASKS``)."""
    try:
        return _TASK_CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r} (choose from {', '.join(_TASK_CLASSES)})") from None


__all__ = ["get_task", "Task", "EncodedSet", "NERTask", "POSTask", "TyDiQATask", "XNLITask",
           "DEV_SELECT_FRACTION", "in_selection_part"]
