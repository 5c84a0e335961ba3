"""BERT-style pretraining: masked LM and next-sentence prediction on raw documents (see `.task`)."""

from tflm.tasks.masked_lm.config import MaskedLMConfig, MaskedLMDataConfig, MaskedLMVocabularyConfig
from tflm.tasks import Run, get_task
from tflm.tasks.masked_lm.task import MaskedLMLoss, MaskedLMTask, fill_in_the_blanks, pretraining_scores
from tflm.tasks.sections import ModelConfig, TrainingConfig


def train(config, run_dir, verbose=True):
    """Pretrains (or resumes) a masked-LM run; returns the `TrainResult`."""
    return get_task("masked_lm").train(config.validate(), run_dir, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", max_examples=None):
    """Masked-LM (and next-sentence) loss and accuracy of a run on a split."""
    return Run.open(run_dir).evaluate(split, checkpoint, max_examples=max_examples)


def save_encoder_preset(run_dir, directory, checkpoint="best"):
    """Saves the run's encoder as a keras-hub preset folder (`keras_hub.models.BertBackbone.from_preset(directory)`
    loads it; its tokenizer is tflm's, in `directory/tflm_tokenizer*`)."""
    import os
    import shutil

    run = Run.open(run_dir)
    model = run.load_model(checkpoint)
    model.backbone.save_to_preset(directory)
    for name in os.listdir(os.path.join(run_dir, "vocab")):
        if name.startswith("tokenizer."):
            shutil.copy(os.path.join(run_dir, "vocab", name), os.path.join(directory, "tflm_" + name))
    return directory

__all__ = ["ModelConfig", "TrainingConfig", "evaluate", "save_encoder_preset", "train", "MaskedLMConfig", "MaskedLMDataConfig", "MaskedLMLoss", "MaskedLMTask", "MaskedLMVocabularyConfig",
           "fill_in_the_blanks", "pretraining_scores"]
