"""Tasks: what a model learns from the backbone's features, and how it is fed, judged and served.

Each task lives in its own module that defines ``TASK``, an instance of
:class:`tfft.tasks.base.Task`; :func:`get_task` imports it on first use.
"""

from __future__ import annotations

import importlib

from tfft.errors import ConfigError

TASK_MODULES = {
    "classify": "tfft.tasks.classify",
    "regress": "tfft.tasks.regress",
    "multilabel": "tfft.tasks.multilabel",
    "ner": "tfft.tasks.ner",
    "qa": "tfft.tasks.qa",
    "summarize": "tfft.tasks.seq2seq",
    "translate": "tfft.tasks.seq2seq",
}
TASK_NAMES = tuple(TASK_MODULES)


def get_task(name: str):
    """The :class:`~tfft.tasks.base.Task` called ``name``.

    Raises:
        ConfigError: no such task.
    """
    if name not in TASK_MODULES:
        raise ConfigError(f"`task` must be one of {', '.join(TASK_NAMES)}. Received: task={name!r}")
    try:
        module = importlib.import_module(TASK_MODULES[name])
    except ModuleNotFoundError as error:
        if error.name != TASK_MODULES[name]:
            raise
        raise ConfigError(f"task={name!r} is not available in this version of tfft.") from None
    tasks = getattr(module, "TASKS", None)  # a module may define several related tasks
    return tasks[name] if tasks else module.TASK
