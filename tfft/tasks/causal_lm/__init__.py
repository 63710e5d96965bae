"""``--task causal-lm``: decoder-only language models (GPT-2 family) fine-tuned on text, and generation.

One module per job:

- ``options.py``: its options, ``CausalLMOptions`` (no TensorFlow).
- ``data.py``: reading plain-text documents, prompt/response pairs and prompts (``LMExamples``).
- ``batches.py``: packing documents into blocks, weighting prompt/response tokens, batches.
- ``metrics.py``: token loss, perplexity, next-token accuracy; stop strings.
- ``serving.py``: the exported serving graph (token ids in, generated ids or scores out).
- ``task.py``: ``TASK`` (reading, model, batches, generation, evaluation, exports).

The model and its generation are in :mod:`tfft.backbones.causal_lm`. The imports run one
way: ``options``, ``data``, ``batches``, ``metrics`` <- ``serving`` <- ``task``.
"""
