"""tfft: fine-tune pretrained language models with TensorFlow and Keras 2.

The public API::

    import tfft
    model = tfft.build_model(hf_model="path/to/bert", task="classify", num_labels=2)
    model.compile(optimizer="adam", loss=tfft.loss_for(model), weighted_metrics=["accuracy"])
    model.fit(tfft.make_dataset(model, texts, labels, training=True), epochs=2)
    tfft.export_saved_model(model, "saved_models/my_model")

See ``tfft.build_model`` for a runnable example on a tiny model.
"""

from tfft.backbones import Backbone, load_backbone
from tfft.config import (
    DataConfig,
    ExportConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
    load_config,
)
from tfft.data import LabelSet, TableSpec, TextExamples, read_examples
from tfft.datasets import make_dataset
from tfft.errors import BackboneError, ConfigError, DataError, ExportError, TfftError
from tfft.export import export_saved_model
from tfft.model import build_model, loss_for, metrics_for
from tfft.pipeline import ExportedClassifier, run_evaluate, run_export, run_fit
from tfft.runtime import runtime
from tfft.train import fit

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "ExportConfig",
    "ExportError",
    "ExportedClassifier",
    "LabelSet",
    "ModelConfig",
    "RunConfig",
    "RuntimeConfig",
    "TableSpec",
    "TextExamples",
    "TfftError",
    "TrainConfig",
    "build_model",
    "export_saved_model",
    "fit",
    "load_backbone",
    "load_config",
    "loss_for",
    "make_dataset",
    "metrics_for",
    "read_examples",
    "run_evaluate",
    "run_export",
    "run_fit",
    "runtime",
]
