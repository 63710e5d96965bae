"""``--task classify``: one label per text or text pair (softmax, cross-entropy, accuracy, macro F1).

``options.py`` holds its options, ``metrics.py`` its metrics (and class weights),
``task.py`` the task. The smallest task: the worked example of how to add one (see the
README, "How the code is laid out").
"""
