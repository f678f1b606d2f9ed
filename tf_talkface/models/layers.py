"""Small Keras layers shared by the landmark models."""
from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="tf_talkface", name="TargetScale")
class TargetScale(keras.layers.Layer):
    """Fixed affine read-out ``y = x * std + mean`` (per output dimension, no weights).

    With it a network predicts *standardised* targets (zero mean, unit variance per coordinate
    or PCA component, statistics of the training split) while the model's output stays in the
    dataset's units, so export, streaming and evaluation need no extra step. Training divides
    the residual by ``std`` (:func:`tf_talkface.models.noise_resilient.weighted_l1`,
    ``dim_weights``), which equals the loss on standardised targets. Issue 11 (our change; the
    papers regress raw targets, which with Adam learns the mean face first).

    Args:
        mean, std: sequences of ``dim`` floats (std > 0).

    Input/output: float (..., dim); computed in float32 whatever the dtype policy.

    Raises:
        ValueError: lengths differ or a std is not positive.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: Any) -> None:
        # always float32: under mixed bfloat16 a mean of ~0.5 would be rounded to ~2e-3, a
        # fifth of the motion it carries
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        mean = [float(v) for v in mean]
        std = [float(v) for v in std]
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise ValueError(f"TargetScale: need equal lengths and std > 0 (got {len(mean)} means, "
                             f"{len(std)} stds, min std {min(std) if std else None})")
        self.mean, self.std = mean, std
        self._mean = np.asarray(mean, np.float32)
        self._std = np.asarray(std, np.float32)

    def call(self, x: Any) -> Any:
        return x * keras.ops.cast(self._std, x.dtype) + keras.ops.cast(self._mean, x.dtype)

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """The same on a numpy array (float32)."""
        return (np.asarray(x, np.float32) * self._std + self._mean).astype(np.float32)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mean=self.mean, std=self.std)
        return config
