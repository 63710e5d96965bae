"""The one module of tfft that imports Keras.

tfft is built on Keras 2 (``tf_keras``): Hugging Face TF models and ``hub.KerasLayer``
only work with it, and Keras 3 objects fail inside tf_keras models. Every other module
does ``from tfft.keras import keras``.

``TF_USE_LEGACY_KERAS=1`` makes ``tf.keras`` mean tf_keras as well, so that user code
mixing ``tf.keras`` with tfft models stays on Keras 2. It only takes effect when set
before TensorFlow is first imported; transformers sets the same default when it loads,
and an explicit value chosen by the user is left alone.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras  # noqa: E402

__all__ = ["keras"]
