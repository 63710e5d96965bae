"""``--task ner``: named-entity recognition, one tag per word (IOB1, IOB2 or BIOES), entities as text spans.

Words are tokenized one by one; the first piece of each word carries the word's tag and
the other pieces are left out of the loss (label -100, weight 0). Sentences longer than
``max_length`` pieces lose their last words; those words are counted and reported
(``truncated_words``) rather than dropped silently, and get no tag.

Entities are read from the tags with the chunking rules of seqeval's default mode (the
conlleval rules), in Python and in TensorFlow for exported models, so that exports,
``tfft predict`` and the metrics agree on what an entity is. Metrics are seqeval's
entity-level precision, recall and F1, overall (micro) and per entity type.

One module per step (each holds the Python version and, where exports or the training
metric need it, its TensorFlow twin next to it):

- ``options.py``: the task's options (no TensorFlow).
- ``words.py``: words and word pieces: packing pre-split sentences as model inputs
  (:func:`~tfft.tasks.ner.words.pack_words`, and
  :func:`~tfft.tasks.ner.words.graph_pack_words` in the graph), per-token labels, and
  per-word tags from token probabilities (:func:`~tfft.tasks.ner.words.word_predictions`).
- ``entities.py``: entities from word tags (:func:`~tfft.tasks.ner.entities.chunks` and
  :func:`~tfft.tasks.ner.entities.entities`, and
  :func:`~tfft.tasks.ner.entities.chunk_spans` and
  :func:`~tfft.tasks.ner.entities.graph_entities` in the graph).
- ``metrics.py``: seqeval's entity-level scores, the Keras ``EntityF1`` training metric
  and the ``--class-weights`` tag weights.
- ``serving.py``: the exported serving graph, and the calls that read its signatures back.
- ``task.py``: ``TASK``, the task (reading, head, batches, prediction, evaluation, exports).

The imports run one way: ``words`` and ``entities`` <- ``serving`` <- ``task``, with
``entities`` <- ``metrics`` <- ``task``; only ``options`` and ``task`` know the task's
options, and nothing imports ``task``.
"""
