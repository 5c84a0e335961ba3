"""Tasks: end-to-end runs composed of data, text, models, training, decoding and metrics.

A task is a `Task` subclass: the run driver is written once, a task supplies only what differs (its
configuration, data, model, predictor, evaluation; see `tflm.tasks.base`). Besides the built-in tasks, a task
may live in a module of your own and is a first-class citizen there:

    # case_tagging.py, in a folder on PYTHONPATH (or an installed package)
    import dataclasses
    from tflm.tasks import DataConfig, ModelConfig, Task, TrainingConfig

    @dataclasses.dataclass
    class CaseTaggingConfig:
        task: str = "case_tagging"
        data: DataConfig = dataclasses.field(default_factory=DataConfig)
        model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="word_tagger"))
        training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

        def validate(self):
            return self

    class CaseTagging(Task):
        name, config_class = "case_tagging", CaseTaggingConfig
        ...  # prepare_data, load_tokenizers, build_model, make_predictor, evaluate_split

    $ PYTHONPATH=. tflm train --task case_tagging:CaseTagging --run-dir runs/case
    $ tflm evaluate --run-dir runs/case        # (PYTHONPATH still set) the run recorded case_tagging:CaseTagging

The run records the task's import path in config.json (`task_class`), so every later command finds it; a
package can instead publish the task under the entry-point group `tflm.tasks` (then `--task case_tagging`).
tests/plugins/word_pairs.py is a whole example with two text inputs and a per-word output.
"""

from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.predictor import (CLASSIFY_METHOD, Predictor, Signature, control_inputs, example_input, integer_input,
                                  parse_example_texts, text_input)
from tflm.tasks.registry import BUILTIN_TASKS, TaskNotFoundError, get_task, register_task, task_names
from tflm.tasks.run import Run
from tflm.tasks.sections import DataConfig, ModelConfig, TrainingConfig, validate_common

DEFAULT_TASK = "translation"  # what `tflm train` trains without --task


def task_of_run(run_dir):
    """The task of the run in `run_dir`, from its config.json ("translation" for runs that predate the field)."""
    return Run.open(run_dir).task


__all__ = ["BUILTIN_TASKS", "CLASSIFY_METHOD", "DEFAULT_TASK", "DataConfig", "Evaluation", "ModelConfig", "Predictor", "Run",
           "Signature", "Task", "TaskData", "TaskNotFoundError", "TrainingConfig", "control_inputs", "example_input", "get_task", "integer_input",
           "parse_example_texts",
           "register_task", "task_names", "task_of_run", "text_input", "validate_common"]
