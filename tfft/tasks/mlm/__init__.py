"""``--task mlm``: continued masked-LM pretraining of an encoder on unlabelled text.

One module per job:

- ``options.py``: its options, ``MaskedLMOptions`` (no TensorFlow).
- ``masking.py``: word ids of token rows, and whole-word masking in the tf.data pipeline.
- ``serving.py``: the exported serving graph (raw text with masks or token ids in; top fills or scores out).
- ``task.py``: ``TASK`` (reading, model, batches, evaluation, exports, fill-mask predictions).

The model is in :mod:`tfft.backbones.masked_lm`; the scores (loss, perplexity, token
accuracy) are shared with ``--task causal-lm`` (:mod:`tfft.tasks.causal_lm.metrics`), and so
is the reader of documents (:mod:`tfft.tasks.causal_lm.data`).
"""
