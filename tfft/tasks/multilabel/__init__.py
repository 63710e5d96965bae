"""``--task multilabel``: any number of labels per text (sigmoid outputs, binary cross-entropy).

``options.py`` holds its options, ``labels.py`` reads label lists and 0/1 label columns,
``metrics.py`` scores predictions at a threshold, ``task.py`` the task.
"""
