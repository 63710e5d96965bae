"""``--task qa``: extractive question answering (SQuAD-style spans), EM/F1.

How a question and its context become model inputs, and how logits become an answer, one
module per step (each holds the Python version and, where exports need it, its TensorFlow
twin next to it):

- ``options.py``: the task's options (no TensorFlow).
- ``windows.py``: words with character offsets, word pieces, windows over long contexts
  and their training labels (:func:`~tfft.tasks.qa.windows.make_windows`, and
  :func:`~tfft.tasks.qa.windows.graph_windows` in the graph).
- ``decode.py``: the best spans from start and end logits
  (:func:`~tfft.tasks.qa.decode.decode_spans`, and
  :func:`~tfft.tasks.qa.decode.graph_decode` in the graph).
- ``metrics.py``: SQuAD exact match and F1.
- ``layers.py``: the Keras span-logits layer and the span-accuracy metric.
- ``serving.py``: the exported serving graph.
- ``task.py``: ``TASK``, the task (reading, head, batches, prediction, evaluation, exports).

The imports run one way: ``windows`` <- ``decode`` <- ``serving`` <- ``task``, with
``metrics`` and ``layers`` used by ``task`` only.
"""
