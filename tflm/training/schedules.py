"""Learning-rate schedules, as Keras `LearningRateSchedule`s (serializable, driven by the optimizer step)."""

import keras
from keras import ops

SCHEDULES = ("constant", "inverse_sqrt", "cosine", "linear")


@keras.saving.register_keras_serializable(package="tflm")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak_learning_rate`, then decay as 1/sqrt(step) (the Transformer's "Noam" shape).

    `lr(step) = peak * min(step / warmup_steps, sqrt(warmup_steps / step))`, with step counted from 1.

    Args:
        peak_learning_rate: float. The rate reached at the end of warmup.
        warmup_steps: int.
    """

    def __init__(self, peak_learning_rate, warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = float(max(self.warmup_steps, 1))
        return self.peak_learning_rate * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="tflm")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then cosine decay to `final_fraction * peak_learning_rate` at `total_steps`.

    Args:
        peak_learning_rate: float.
        warmup_steps: int.
        total_steps: int. Steps after which the rate stays at its floor.
        final_fraction: float. The floor as a fraction of the peak.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, final_fraction=0.1):
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.final_fraction = final_fraction

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = float(max(self.warmup_steps, 1))
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(3.141592653589793 * progress))
        decayed = self.final_fraction + (1.0 - self.final_fraction) * cosine
        return self.peak_learning_rate * ops.where(step < warmup, step / warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "final_fraction": self.final_fraction,
        }


class WarmupLinear(WarmupCosine):
    """Linear warmup, then linear decay to `final_fraction * peak_learning_rate` (0 by default) at `total_steps`
    (BERT's fine-tuning schedule)."""

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, final_fraction=0.0):
        super().__init__(peak_learning_rate, warmup_steps, total_steps, final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = float(max(self.warmup_steps, 1))
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        decayed = 1.0 - (1.0 - self.final_fraction) * progress
        return self.peak_learning_rate * ops.where(step < warmup, step / warmup, decayed)


def make_schedule(name, learning_rate, warmup_steps=0, total_steps=None):
    """The schedule called `name` (one of `SCHEDULES`)."""
    if name == "constant":
        if warmup_steps:
            return WarmupCosine(learning_rate, warmup_steps, warmup_steps, final_fraction=1.0)
        return learning_rate
    if name == "inverse_sqrt":
        return WarmupInverseSqrt(learning_rate, warmup_steps)
    if name == "cosine":
        if not total_steps:
            raise ValueError("The cosine schedule needs the total number of steps (training.max_steps or epochs).")
        return WarmupCosine(learning_rate, warmup_steps, total_steps)
    if name == "linear":
        if not total_steps:
            raise ValueError("The linear schedule needs the total number of steps (training.max_steps or epochs).")
        return WarmupLinear(learning_rate, warmup_steps, total_steps)
    raise ValueError(f"Unknown learning-rate schedule {name!r}; known: {', '.join(SCHEDULES)}.")
