"""``--task regress``: one or more float targets per text or text pair.

``options.py`` holds its options, ``targets.py`` parses and scales targets, ``metrics.py``
scores predictions, ``task.py`` has the head and the task.
"""
