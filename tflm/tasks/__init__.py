"""Tasks: end-to-end runs composed of data, text, models, training, decoding and metrics.

Each task is a `Task` subclass registered by name (`register_task`); a run's task is read once from its
`config.json` (`task_of_run`). Besides the built-in tasks, `get_task` finds tasks registered by an imported
module, named as `package.module:ClassName`, or published by an installed package under the entry-point
group `tflm.tasks`.
"""

import importlib

from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.predictor import Predictor, Signature

DEFAULT_TASK = "translation"  # what `tflm train` trains without --task
BUILTIN_TASKS = {"translation": "tflm.tasks.translation", "language_modeling": "tflm.tasks.language_modeling",
                 "summarization": "tflm.tasks.summarization"}
_TASKS = {}


def register_task(cls):
    """Class decorator: registers a `Task` subclass under its `name` (a later registration replaces it)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name or cls.config_class is None:
        raise TypeError(f"{cls!r}: a task is a Task subclass with a name and a config_class.")
    _TASKS[cls.name] = cls()
    return cls


def get_task(name):
    """The registered task called `name` (a built-in, a registered one, or `module:Class`)."""
    if name not in _TASKS and name in BUILTIN_TASKS:
        importlib.import_module(BUILTIN_TASKS[name])
    if name not in _TASKS and ":" in name:
        module, _, class_name = name.partition(":")
        cls = getattr(importlib.import_module(module), class_name)
        _TASKS[name] = cls()
    if name not in _TASKS:
        _load_entry_points()
    if name not in _TASKS:
        known = sorted(set(BUILTIN_TASKS) | set(_TASKS))
        raise ValueError(f"Unknown task {name!r}; known: {', '.join(known)} (or give package.module:ClassName).")
    return _TASKS[name]


def task_names():
    return sorted(set(BUILTIN_TASKS) | set(_TASKS))


def task_of_run(run_dir):
    """The task of the run in `run_dir`, from its config.json ("translation" for runs that predate the field)."""
    from tflm.tasks.runs import task_name

    return get_task(task_name(run_dir))


def _load_entry_points():
    from importlib.metadata import entry_points

    for entry in entry_points(group="tflm.tasks"):
        if entry.name not in _TASKS:
            cls = entry.load()
            _TASKS[entry.name] = cls()


__all__ = ["Evaluation", "Predictor", "Signature", "Task", "TaskData", "get_task", "register_task", "task_names",
           "task_of_run", "DEFAULT_TASK"]
