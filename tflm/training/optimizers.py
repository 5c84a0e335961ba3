"""Optimizers that Keras lacks as they are needed here."""

import keras
from keras import ops

from tflm.config import ConfigError
from tflm.training.schedules import make_schedule


class Muon(keras.optimizers.Muon):
    """Keras' `Muon` with its Newton–Schulz orthogonalization computed in `newton_schulz_dtype`.

    Keras runs the five Newton–Schulz iterations in the variables' dtype (float32). They are matrix products
    only, and the Muon authors run them in bfloat16; on a CPU with bfloat16 dot products (AVX512-BF16) a 4-layer,
    width-384 GPT then trains at x1.18 the tokens/s on two cores (tools/bench/optimizer_speed.py).
    The momentum, the update's scale and the variables stay float32: only the orthogonalization is rounded.
    """

    def __init__(self, *args, newton_schulz_dtype="float32", **kwargs):
        super().__init__(*args, **kwargs)
        self.newton_schulz_dtype = newton_schulz_dtype

    def zeropower_via_newtonschulz5(self, x, steps: int):
        # A cast to the dtype a tensor already has is no op, so float32 runs Keras' iterations unchanged.
        orthogonalized = super().zeropower_via_newtonschulz5(ops.cast(x, self.newton_schulz_dtype), steps)
        return ops.cast(orthogonalized, x.dtype)

    def get_config(self):
        return {**super().get_config(), "newton_schulz_dtype": self.newton_schulz_dtype}


class FusedAdam(keras.optimizers.Adam):
    """Keras' `Adam` whose update of a dense gradient is one fused TensorFlow kernel (`ResourceApplyAdam`).

    Keras' update is about a dozen element-wise ops per variable (the two moments, the square root, the
    division, the three assignments), each a full pass over the variable and a dispatch: for the 133 variables
    of a 3+3-layer Transformer about 1,600 ops per step (the element-wise `Mul`, `Sub`, `RealDiv` of the
    TensorFlow profile of a CPU training step). `ResourceApplyAdam` computes the same update,
    `m += (g - m)(1 - b1)`, `v += (g² - v)(1 - b2)`, `w -= lr·sqrt(1 - b2^t)/(1 - b1^t) · m/(sqrt(v) + eps)`,
    in one pass. Sparse gradients (`IndexedSlices`
    of an embedding lookup), AMSGrad and non-TensorFlow variables take Keras' own update. The slots are Keras',
    so checkpoints are interchangeable with `keras.optimizers.Adam`'s.
    """

    # Per-variable learning rates (`set_learning_rate_multipliers`): a factor for each variable (layer-wise decay)
    # and a number of first steps during which it stays still (a frozen encoder). Keras' optimizers have one
    # learning rate for all variables.
    _multipliers = None  # {variable index: (factor, frozen_steps)}

    def set_learning_rate_multipliers(self, multipliers):
        """Scales the learning rate (and the decoupled weight decay) of some variables; call it after `build`.

        Args:
            multipliers: `[(variable, factor, frozen_steps)]`: that variable's updates use `factor` times the
                learning rate, and none during the first `frozen_steps` optimizer steps. Other variables: 1, 0.
        """
        self._multipliers = {self._get_variable_index(variable): (float(factor), int(frozen))
                             for variable, factor, frozen in multipliers}

    def _scaled_learning_rate(self, variable, learning_rate):
        import tensorflow as tf

        factor, frozen = (self._multipliers or {}).get(self._get_variable_index(variable), (1.0, 0))
        if factor == 1.0 and not frozen:
            return learning_rate
        learning_rate = learning_rate * tf.cast(factor, learning_rate.dtype)
        if frozen:
            learning_rate = tf.where(self.iterations < frozen, tf.zeros_like(learning_rate), learning_rate)
        return learning_rate

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self._multipliers:
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        # (as Keras' TensorFlow optimizer does it, each variable decayed at its own learning rate)
        def distributed_apply(distribution, variables, **kwargs):
            def decay(variable, learning_rate):
                variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * learning_rate)

            for variable in variables:
                if not self._use_weight_decay(variable):
                    continue
                learning_rate = self._scaled_learning_rate(variable, tf.cast(self.learning_rate, variable.dtype))
                value = variable.value if isinstance(variable, keras.Variable) else variable
                distribution.extended.update(value, decay, args=(learning_rate,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(distributed_apply, self._distribution_strategy,
                                                            variables)

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        learning_rate = self._scaled_learning_rate(variable, tf.convert_to_tensor(learning_rate))
        handle = getattr(variable, "handle", None)
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices) or handle is None:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


OPTIMIZERS = ("adam", "muon")  # the values of a configuration's training.optimizer


def check_optimizer(name):
    """Checked when a configuration is validated, so that a typo fails before data preparation."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"training.optimizer={name!r} must be one of {', '.join(OPTIMIZERS)}.")


def build_optimizer(training_config, total_steps=None):
    """Adam (AdamW with `weight_decay`; both `FusedAdam`), or Muon: orthogonalized momentum for the 2-D weights of
    the Transformer blocks, Adam for embeddings, biases and norms (Keras' `Muon`, whose update is rescaled to
    Adam's size so that the two share one learning rate and schedule)."""
    schedule = make_schedule(training_config.schedule, training_config.learning_rate,
                             training_config.warmup_steps, total_steps)
    check_optimizer(training_config.optimizer)
    if training_config.optimizer == "muon":
        # Embedding tables (paths with "embedding"; GPT's output projection is tied to one) and the LSTM model's
        # untied output layer (".../logits/kernel") stay with Adam, as the Muon authors advise. Under bfloat16 mixed
        # precision the Newton–Schulz iterations run in bfloat16 too (float16's range is too small for them).
        newton_schulz_dtype = "bfloat16" if training_config.mixed_precision == "bfloat16" else "float32"
        optimizer = Muon(schedule, adam_beta_2=0.98, weight_decay=training_config.weight_decay or None,
                         exclude_layers=["/logits/"], newton_schulz_dtype=newton_schulz_dtype)
    else:  # Keras' Adam (AdamW: with decoupled weight decay), its dense updates fused
        optimizer = FusedAdam(schedule, weight_decay=training_config.weight_decay or None, beta_2=0.98)
    if training_config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
