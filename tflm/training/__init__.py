"""Training: losses, schedules, checkpoints, strategies and the resumable trainer."""

from tflm.training.checkpoints import (
    CheckpointError,
    ModelVariables,
    average_checkpoints,
    checkpoint_paths,
    model_checkpoint,
    restore_model,
)
from tflm.training.losses import ClassCrossEntropy, Loss, TokenCrossEntropy, token_cross_entropy
from tflm.training.optimizers import Muon
from tflm.training.projector import checkpoint_tensor_name, write_projector
from tflm.training.reporting import flat_hparams
from tflm.training.schedules import SCHEDULES, WarmupCosine, WarmupInverseSqrt, make_schedule
from tflm.training.steps import accumulation_steps_for
from tflm.training.strategies import STRATEGIES, make_strategy, split_cpu
from tflm.training.reporting import TrainResult
from tflm.training.seeds import set_seed
from tflm.training.trainer import Trainer
