"""Tasks: what a model learns from the backbone's features, and how it is fed, judged and served.

Each task is a package ``tfft/tasks/<name>/`` with

- ``options.py``: ``OPTIONS``, a frozen dataclass of the task's options (defaults, help,
  checks; see :mod:`tfft.options`). It imports no TensorFlow: the CLI and the YAML checks
  read it before a model is needed.
- ``task.py``: ``TASK``, an instance of :class:`tfft.tasks.base.Task` (or ``TASKS``, a dict
  of name -> task, for packages that serve several related tasks).

and one line in :data:`REGISTRY`. Nothing else in tfft names the tasks: the command line,
the YAML validation and :func:`tfft.build_model` all go through :func:`get_task` and
:func:`options_class`.

>>> options_class("qa")().doc_stride
128
>>> get_task("clasify")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tfft.errors.ConfigError: `task` must be one of classify, regress, ... Received: task='clasify'
"""

from __future__ import annotations

import importlib

from tfft.errors import ConfigError

#: task name -> the package that defines it
REGISTRY: dict[str, str] = {
    "classify": "tfft.tasks.classify",
    "regress": "tfft.tasks.regress",
    "multilabel": "tfft.tasks.multilabel",
    "ner": "tfft.tasks.ner",
    "qa": "tfft.tasks.qa",
    "summarize": "tfft.tasks.seq2seq",
    "translate": "tfft.tasks.seq2seq",
    "causal-lm": "tfft.tasks.causal_lm",
    "mlm": "tfft.tasks.mlm",
}


def register(name: str, package: str) -> None:
    """Add a task: ``package`` (an importable name) has ``options.py`` and ``task.py``.

    Raises:
        ConfigError: the name is taken by another package.
    """
    if REGISTRY.get(name, package) != package:
        raise ConfigError(f"task {name!r} is already registered (by {REGISTRY[name]}).")
    REGISTRY[name] = package


def task_names() -> tuple[str, ...]:
    """The registered task names, in registration order."""
    return tuple(REGISTRY)


def _check_name(name: str) -> str:
    if name not in REGISTRY:
        raise ConfigError(f"`task` must be one of {', '.join(REGISTRY)}. Received: task={name!r}")
    return REGISTRY[name]


def options_class(name: str) -> type:
    """The options dataclass of task ``name`` (imports no TensorFlow).

    Raises:
        ConfigError: no such task.
    """
    return importlib.import_module(f"{_check_name(name)}.options").OPTIONS


def get_task(name: str):
    """The :class:`~tfft.tasks.base.Task` called ``name``.

    Raises:
        ConfigError: no such task.
    """
    module = importlib.import_module(f"{_check_name(name)}.task")
    tasks = getattr(module, "TASKS", None)  # a package may define several related tasks
    return tasks[name] if tasks else module.TASK
