"""`Run`: a run directory read once (its configuration, its task, its tokenizers) and passed along.

    run = Run.open("runs/en-es")              # one read of config.json; the task found again
    run.evaluate(split="valid")                # the task's scores, written to runs/en-es/eval/
    predictor = run.load_predictor("best")     # what `tflm predict` answers with and `tflm export` saves

Every command that uses a trained run opens it once this way; nothing here writes config.json.
"""

import os

from tflm.tasks import registry, runs


class Run:
    """A trained (or training) run: `run_dir`, its `task`, its `config` and, loaded on first use, its tokenizers.

    Args:
        run_dir: the run directory.
        task: the run's `Task`.
        config: the run's configuration dataclass (possibly changed in memory, e.g. `with_data_dir`).
    """

    def __init__(self, run_dir, task, config):
        self.run_dir = run_dir
        self.task = task
        self.config = config
        self._tokenizers = None

    @classmethod
    def open(cls, run_dir, task=None):
        """Reads `run_dir/config.json` once and finds the run's task (a plug-in task by the import path the run
        recorded). `task`: a `--task` the user gave, which must be the run's own."""
        values = runs.read_run_file(run_dir)
        name = runs.task_name(run_dir, values)
        found = registry.get_task(name, values.get(runs.TASK_CLASS), where=runs.config_path(run_dir))
        if task is not None and task not in (name, values.get(runs.TASK_CLASS)):
            given = registry.get_task(task)
            if given is not found:
                raise ValueError(f"{run_dir} is a {name} run; --task {task} does not apply to it (leave --task out "
                                 "to resume it, or train in a new --run-dir).")
        return cls(run_dir, found, found.load_config(run_dir, values))

    @property
    def tokenizers(self):
        if self._tokenizers is None:
            self._tokenizers = self.task.load_tokenizers(self.run_dir)
        return self._tokenizers

    def with_data_dir(self, data_dir):
        """This run reading its corpus from `data_dir` (in memory only: config.json is not changed)."""
        return Run(self.run_dir, self.task, self.task.with_data_dir(self.config, data_dir))

    def decoding(self):
        """The run's decoding settings (None for a task that does not decode)."""
        return self.task.decoding(self.config)

    def load_model(self, checkpoint="best"):
        return self.task.load_model(self.run_dir, checkpoint, config=self.config, tokenizers=self.tokenizers)

    def load_predictor(self, checkpoint="best", decoding=None, **options):
        return self.task.load_predictor(self.run_dir, checkpoint, decoding=decoding, config=self.config,
                                        tokenizers=self.tokenizers, **options)

    def average(self, count=5):
        return self.task.average(self.run_dir, count, config=self.config, tokenizers=self.tokenizers)

    def evaluate(self, split="test", checkpoint="best", **options):
        return self.task.evaluate(self.run_dir, split=split, checkpoint=checkpoint, config=self.config, **options)

    def export_inputs(self, count=16):
        return self.task.export_inputs(self.config, count)

    def config_values(self):
        """What config.json holds (for the export's copy of it), without reading the file again."""
        return runs.config_values(self.config, self.task.class_path())

    def __repr__(self):
        return f"Run({os.fspath(self.run_dir)!r}, task={self.task.name!r})"
