"""Seeding a run: called by the CLI and recipes, never at import."""

import keras
import numpy as np


def set_seed(seed):
    """Seeds Python, NumPy, TensorFlow and Keras (called by the CLI and recipes, never at import)."""
    keras.utils.set_random_seed(seed)
    np.random.seed(seed)
