"""``--task summarize`` and ``--task translate``: text to text with encoder-decoder models.

One module per job:

- ``options.py``: their options, ``Seq2SeqOptions`` (no TensorFlow).
- ``batches.py``: source and target token ids, bucketed teacher-forcing batches.
- ``metrics.py``: sacreBLEU (translate) and ROUGE-1/2/L (summarize) on generated text.
- ``serving.py``: the exported serving graph (in-graph tokenizer, XLA generation,
  in-graph detokenizer; or token ids in and out).
- ``task.py``: ``TASKS``, the two tasks (reading, model, batches, generation, evaluation,
  exports).

The models and their in-graph tokenizers are in :mod:`tfft.backbones.seq2seq` and
:mod:`tfft.backbones.graph_text`; source/target pairs are read by :mod:`tfft.data.parallel`.
The imports run one way: ``options``, ``batches``, ``metrics`` and ``serving`` (which import
none of each other) <- ``task``.
"""
