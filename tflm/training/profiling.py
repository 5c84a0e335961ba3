"""`--profile START:STOP`: a TensorFlow profiler trace of some training steps or decoding batches, written where
TensorBoard's Profile tab finds it (`RUN/logs/plugins/profile/<timestamp>/*.xplane.pb`).

    profiler = StepProfiler(os.path.join(run_dir, "logs"), *parse_profile_range("10:20"))
    for step in ...:
        profiler.before(step)      # starts the trace when step == START
        ...                        # the step
        profiler.after(step + 1)   # stops it once STOP steps are done

Loops that do not know about the profiler (a predictor's decoding batches) call `tick()`, which advances the
profiler made current by `profiling(...)` (a context manager), if any.
"""

import contextlib
import logging
import os

import tensorflow as tf

logger = logging.getLogger("tflm")

_current = None  # the StepProfiler that `tick()` advances


def parse_profile_range(text):
    """`"START:STOP"` -> `(start, stop)`, 0 <= start < stop; a clear error otherwise."""
    try:
        start, stop = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ValueError(f"--profile {text!r}: give START:STOP, e.g. 10:20 (steps or batches, START included, "
                         "STOP excluded).") from None
    if not 0 <= start < stop:
        raise ValueError(f"--profile {text!r}: START must be at least 0 and below STOP.")
    return start, stop


class StepProfiler:
    """Traces steps `start` (included) to `stop` (excluded) with `tf.profiler.experimental` into `logdir`."""

    def __init__(self, logdir, start, stop):
        self.logdir, self.start, self.stop = logdir, start, stop
        self.active = False
        self.done = False
        self.count = 0  # for tick()

    def before(self, step):
        if not self.active and not self.done and self.start <= step < self.stop:
            os.makedirs(self.logdir, exist_ok=True)
            tf.profiler.experimental.start(self.logdir)
            self.active = True
            logger.info("Profiling from step %d to %d into %s", step, self.stop, self.logdir)

    def after(self, steps_done):
        if self.active and steps_done >= self.stop:
            self.close()

    def close(self):
        if self.active:
            tf.profiler.experimental.stop()
            self.active, self.done = False, True
            logger.info("Profile written under %s (TensorBoard: tensorboard --logdir %s, the Profile tab)",
                        os.path.join(self.logdir, "plugins", "profile"), self.logdir)

    def tick(self, function, *args, **kwargs):
        """Runs one step of a loop that counts itself: `function(*args, **kwargs)` traced if its index is in range."""
        self.before(self.count)
        try:
            return function(*args, **kwargs)
        finally:
            self.count += 1
            self.after(self.count)


@contextlib.contextmanager
def profiling(logdir, profile_range):
    """Makes a `StepProfiler` over `profile_range` ("START:STOP" or None: nothing) current for `tick()`."""
    global _current
    if not profile_range:
        yield None
        return
    profiler = StepProfiler(logdir, *parse_profile_range(profile_range))
    previous, _current = _current, profiler
    try:
        yield profiler
    finally:
        if not profiler.done and not profiler.active:
            logger.warning("--profile %s: the loop ran %d steps, none in that range; no profile was written.",
                           profile_range, profiler.count)
        profiler.close()
        _current = previous


def tick(function, *args, **kwargs):
    """`function(*args, **kwargs)`, counted (and traced when in range) by the current profiler, if any."""
    if _current is None:
        return function(*args, **kwargs)
    return _current.tick(function, *args, **kwargs)
