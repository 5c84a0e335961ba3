"""Where tasks are found: the built-in ones, tasks registered by an imported module, `package.module:ClassName`
import paths and the entry-point group `tflm.tasks` of installed packages.

A plug-in task is named once. `tflm train --task mymodule:CaseTagging` (or `--task case_tagging` for a task an
installed package publishes under the entry-point group `tflm.tasks`) resolves it, and the run records the
import path of its class in config.json (`task_class`), so resuming with the same command, `tflm evaluate`,
`export`, `predict`, `average` and `serve` find it again. A module that cannot be imported is one clear error
naming the module and the fixes, raised before anything is written.
"""

import importlib

from tflm.tasks.base import Task

BUILTIN_TASKS = {"translation": "tflm.tasks.translation", "language_modeling": "tflm.tasks.language_modeling",
                 "summarization": "tflm.tasks.summarization", "classification": "tflm.tasks.classification",
                 "masked_lm": "tflm.tasks.masked_lm", "tagging": "tflm.tasks.tagging",
                 "extractive_qa": "tflm.tasks.extractive_qa"}
_TASKS = {}  # name or import path -> task instance


class TaskNotFoundError(ValueError):
    """A task name or import path that cannot be resolved; the message says why and how to fix it."""


def register_task(cls):
    """Class decorator: registers a `Task` subclass under its `name` (a later registration replaces it)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name or cls.config_class is None:
        raise TypeError(f"{cls!r}: a task is a Task subclass with a name and a config_class.")
    _TASKS[cls.name] = cls()
    return cls


def get_task(name, task_class=None, where=None):
    """The task called `name`: a built-in, a registered one, an entry point of the group `tflm.tasks`, or an
    import path `package.module:ClassName`. `task_class` (an import path, as a run records it) is imported
    when `name` is not known otherwise; `where` (e.g. "runs/x/config.json") names the record in errors."""
    if name not in _TASKS and name in BUILTIN_TASKS:
        importlib.import_module(BUILTIN_TASKS[name])
    if name not in _TASKS and ":" in name:
        _TASKS[name] = _import_task(name, where)
    if name not in _TASKS and task_class:
        task = _import_task(task_class, where)
        _TASKS[name] = task
    if name not in _TASKS:
        _load_entry_points()
    if name not in _TASKS:
        known = sorted(set(BUILTIN_TASKS) | {key for key in _TASKS if ":" not in key})
        raise TaskNotFoundError(f"{where + ': ' if where else ''}unknown task {name!r}; known: {', '.join(known)}. "
                                "Give a plug-in task as --task package.module:ClassName (its module importable: on "
                                "PYTHONPATH or installed), or publish it under the entry-point group tflm.tasks.")
    return _TASKS[name]


def task_class_path(task):
    """The import path of a task's class (`module:Class`) that a run records (`Task.class_path`)."""
    return task.class_path()


def task_names():
    return sorted(set(BUILTIN_TASKS) | {key for key in _TASKS if ":" not in key})


def _import_task(path, where=None):
    """The task instance of `package.module:ClassName` (registered under its name too)."""
    module_name, _, class_name = path.partition(":")
    prefix = f"{where}: " if where else ""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise TaskNotFoundError(
                f"{prefix}task {path}: Python cannot import module {error.name!r}. Put the folder that holds it on "
                f"PYTHONPATH (PYTHONPATH=/path/to/folder tflm ...), install its package (pip install -e FOLDER), "
                f"or publish the task under the entry-point group tflm.tasks.") from None
        raise TaskNotFoundError(f"{prefix}task {path}: importing {module_name} failed: {error}") from None
    cls = getattr(module, class_name, None) if class_name else None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskNotFoundError(f"{prefix}task {path}: {module_name} has no Task subclass named {class_name!r} "
                                "(give package.module:ClassName).")
    if cls.name in _TASKS and type(_TASKS[cls.name]) is cls:
        return _TASKS[cls.name]
    task = cls()
    if cls.name:
        _TASKS.setdefault(cls.name, task)
    return task


def _load_entry_points():
    from importlib.metadata import entry_points

    for entry in entry_points(group="tflm.tasks"):
        if entry.name not in _TASKS:
            cls = entry.load()
            _TASKS[entry.name] = cls()
