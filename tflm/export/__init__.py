"""Export to SavedModels for TensorFlow Serving, and the check that stock TF Serving can run them."""

from tflm.export.check import CheckReport, check_saved_model, graph_ops, serving_op_set
from tflm.export.exporter import (
    ExportCheckError,
    build_archive,
    export_predictor,
    export_run,
    export_translator,
    next_version,
    write_models_config,
    write_warmup_requests,
)
from tflm.export.limits import ServingLimits
from tflm.export.loading import ExportedModel, load
