"""tfft: fine-tune pretrained language models with TensorFlow and Keras 2.

The public API::

    import tfft
    model = tfft.build_model(hf_model="path/to/bert", task="classify", num_labels=2)
    model.compile(optimizer="adam", loss=tfft.loss_for(model), weighted_metrics=tfft.metrics_for(model))
    model.fit(tfft.make_dataset(model, texts, labels, training=True), epochs=2)
    tfft.export_saved_model(model, "saved_models/my_model")

See ``tfft.build_model`` for a runnable example on a tiny model. Names are imported on
first use, so ``import tfft`` (and reading data with ``tfft.data``) does not load
TensorFlow until a model is needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "Backbone": "tfft.backbones",
    "load_backbone": "tfft.backbones",
    "DataConfig": "tfft.config",
    "ExportConfig": "tfft.config",
    "ModelConfig": "tfft.config",
    "RunConfig": "tfft.config",
    "RuntimeConfig": "tfft.config",
    "TrainConfig": "tfft.config",
    "load_config": "tfft.config",
    "LabelSet": "tfft.data",
    "TableSpec": "tfft.data",
    "TextExamples": "tfft.data",
    "read_examples": "tfft.data",
    "make_dataset": "tfft.datasets",
    "BackboneError": "tfft.errors",
    "ConfigError": "tfft.errors",
    "DataError": "tfft.errors",
    "ExportError": "tfft.errors",
    "TfftError": "tfft.errors",
    "export_saved_model": "tfft.export",
    "build_model": "tfft.model",
    "loss_for": "tfft.model",
    "metrics_for": "tfft.model",
    "ExportedClassifier": "tfft.exported",
    "run_evaluate": "tfft.inference",
    "run_export": "tfft.pipeline",
    "run_fit": "tfft.pipeline",
    "runtime": "tfft.execution",
    "fit": "tfft.train",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        try:  # a submodule, e.g. tfft.model
            return importlib.import_module(f"tfft.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"tfft.{name}":
                raise
            raise AttributeError(f"module 'tfft' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
