"""Text processing as TensorFlow ops, for exports that take raw text (:mod:`tfft.text.bpe`)."""
