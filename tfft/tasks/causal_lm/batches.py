"""Token rows and batches of ``--task causal-lm``.

Every row is ``inputs = ids[:-1]``, ``labels = ids[1:]`` with a weight per label (the
loss is the mean over weighted tokens):

- **Plain text** (:func:`pack_documents`): each document is tokenized (with the tokenizer's
  own special tokens, none for GPT-2), followed by the end-of-text token, and the documents
  are joined into one stream cut into blocks of ``block_size`` inputs. Consecutive blocks
  overlap by one token, so every token of the stream but the first is a label exactly once
  and no padding is computed except in the **last, partial block, which is kept and padded
  with weight 0** (nothing is dropped). Blocks attend across document boundaries (the
  end-of-text token separates them), as in Hugging Face's ``run_clm``.
- **Prompt/response pairs** (:func:`prompt_response_rows`): the prompt written with the
  ``template`` (default ``"{prompt}"``), then the response, then the end-of-text token.
  Prompt and response are tokenized separately, as the prompt is at generation time.
  Labels inside the prompt weigh 0, the response's tokens and the end token 1. A pair longer
  than ``max_length + 1`` tokens loses the start of its prompt (down to half of
  ``max_length``), then the end of its response. Batches are bucketed by length
  (:func:`tfft.preprocess.bucketed_dataset`).

The functions take the tokenizer, not the model, so exports (whose tokenizer travels in
``assets.extra/tokenizer``) batch evaluation data the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.errors import DataError
from tfft.preprocess import Batching, bucket_lengths, bucketed_dataset, ragged_rows


def unescape(text: str) -> str:
    r"""``\n`` and ``\t`` typed on a command line as newline and tab.

    >>> unescape("{prompt}\\n")
    '{prompt}\n'
    """
    return text.replace("\\n", "\n").replace("\\t", "\t")


def format_prompt(prompt: str, template: str | None) -> str:
    r"""The prompt as the model reads it: ``template`` (``\n``, ``\t`` unescaped) with ``{prompt}`` replaced.

    >>> format_prompt("2+2?", "Q: {prompt}\\nA:")
    'Q: 2+2?\nA:'
    """
    return prompt if not template else unescape(template).replace("{prompt}", prompt)


def tokenize(tokenizer, texts: Sequence[str], special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens when ``special_tokens``)."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=special_tokens)["input_ids"]


def pack_documents(
    tokenizer, documents: Sequence[str], eos_id: int, block_size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(inputs, labels)`` rows: the documents joined with ``eos_id`` and cut into blocks.

    Every block has ``block_size`` inputs except the last, which may be shorter; its labels
    are the inputs shifted by one (the next block starts where its labels end).

    >>> class Chars:  # a toy tokenizer: one id per character
    ...     def __call__(self, texts, add_special_tokens=True):
    ...         return {"input_ids": [[ord(c) - 96 for c in text] for text in texts]}
    >>> inputs, labels = pack_documents(Chars(), ["abc", "de"], 0, 3)
    >>> [row.tolist() for row in inputs], [row.tolist() for row in labels]
    ([[1, 2, 3], [0, 4, 5]], [[2, 3, 0], [4, 5, 0]])
    """
    stream: list[int] = []
    for ids in tokenize(tokenizer, documents):
        stream.extend(ids)
        if not ids or ids[-1] != eos_id:
            stream.append(eos_id)
    tokens = np.asarray(stream, np.int32)
    inputs, labels = [], []
    for start in range(0, len(tokens) - 1, block_size):
        chunk = tokens[start : start + block_size + 1]
        inputs.append(chunk[:-1])
        labels.append(chunk[1:])
    return inputs, labels


def prompt_response_rows(
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    eos_id: int,
    template: str | None,
    max_length: int,
    source: str = "",
    rows: Sequence[int] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``(inputs, labels, weights)`` rows of prompt/response pairs (see the module docs).

    Raises:
        DataError: a response without tokens (its file and row named).
    """
    prompt_ids = tokenize(tokenizer, [format_prompt(p, template) for p in prompts])
    response_ids = tokenize(tokenizer, responses, special_tokens=False)
    inputs, labels, weights = [], [], []
    limit = max_length + 1
    for index, (prompt, response) in enumerate(zip(prompt_ids, response_ids)):
        if not response:
            row = rows[index] if rows is not None else index + 1
            raise DataError(
                f"{source}:{row}: the response is empty (no tokens). Received: {responses[index]!r}"
            )
        response = [*response, eos_id]
        if len(prompt) + len(response) > limit:
            keep = max(limit - len(response), min(len(prompt), max_length // 2))
            prompt = prompt[len(prompt) - keep :] if keep else []
            response = response[: limit - len(prompt)]
        ids = np.asarray([*prompt, *response], np.int32)
        weight = np.zeros([len(ids) - 1], np.float32)
        weight[max(len(prompt) - 1, 0) :] = (
            1.0  # label t is ids[t + 1]: a response token from t = len(prompt) - 1
        )
        inputs.append(ids[:-1])
        labels.append(ids[1:])
        weights.append(weight)
    return inputs, labels, weights


def _example(row):
    features = {"input_ids": row["input_ids"], "attention_mask": tf.ones_like(row["input_ids"])}
    if "labels" not in row:
        return features
    return features, row["labels"], row["weights"]


def lm_batches(
    inputs: list[np.ndarray],
    labels: list[np.ndarray] | None,
    weights: list[np.ndarray] | None,
    *,
    pad_id: int,
    batch_size: int,
    buckets: list[int],
    training: bool = False,
    seed: int | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """``({input_ids, attention_mask}, labels, weights)`` batches (features alone without labels),
    bucketed and padded (padding weighs 0) by :func:`tfft.preprocess.bucketed_dataset`, training
    batches drawn as ``batching`` says."""
    if not inputs:
        raise DataError("No tokens to make batches of.")
    columns = {"input_ids": ragged_rows(inputs)}
    padding = {"input_ids": pad_id, "attention_mask": 0}
    if labels is not None:
        if weights is None:
            weights = [np.ones([len(row)], np.float32) for row in labels]
        columns.update(labels=ragged_rows(labels), weights=ragged_rows(weights, np.float32))
        padding = (padding, pad_id, 0.0)
    return bucketed_dataset(
        columns,
        _example,
        padding,
        batch_size=batch_size,
        buckets=buckets,
        lengths=[len(row) for row in inputs],
        training=training,
        seed=seed,
        batching=batching,
    )


def examples_batches(
    tokenizer,
    examples,
    *,
    eos_id: int,
    pad_id: int,
    settings: dict,
    batch_size: int,
    max_length: int,
    training: bool = False,
    seed: int | None = None,
    labelled: bool = True,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """Batches of :class:`~tfft.tasks.causal_lm.data.LMExamples`: packed blocks of documents,
    weighted prompt/response rows, or (unlabelled) prompts alone; ``batching`` as for
    :func:`lm_batches`."""
    template = settings.get("template")
    if not labelled or (examples.prompts and examples.responses is None):
        texts = [format_prompt(t, template) for t in examples.texts] if examples.prompts else examples.texts
        ids = [np.asarray(row[-max_length:], np.int32) for row in tokenize(tokenizer, texts)]
        return lm_batches(
            ids, None, None, pad_id=pad_id, batch_size=batch_size, buckets=bucket_lengths(max_length)
        )
    if examples.responses is None:
        block = int(settings.get("block_size") or max_length)
        inputs, labels = pack_documents(tokenizer, examples.texts, eos_id, block)
        return lm_batches(
            inputs,
            labels,
            None,
            pad_id=pad_id,
            batch_size=batch_size,
            buckets=[block],
            training=training,
            seed=seed,
            batching=batching,
        )
    inputs, labels, weights = prompt_response_rows(
        tokenizer,
        examples.texts,
        examples.responses,
        eos_id=eos_id,
        template=template,
        max_length=max_length,
        source=examples.source,
        rows=examples.rows,
    )
    return lm_batches(
        inputs,
        labels,
        weights,
        pad_id=pad_id,
        batch_size=batch_size,
        buckets=bucket_lengths(max_length),
        training=training,
        seed=seed,
        batching=batching,
    )
