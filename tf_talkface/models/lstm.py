"""Eskimez et al. 2018 landmark generator: 4 stacked LSTMs on log-mel delta features.

Source: reference.md, "Eskimez et al. 2018 — Model": 4 stacked LSTMs, all
``activation='sigmoid'``, dropout 0.2, recurrent dropout 0.2, ``return_sequences``; the first
three with ``u`` units (256 in the released models), the last with 136 (68 landmarks x (x, y),
coordinates / 600). Loss (MSE), metric (MAE), optimiser and the feature context/delay are the
trainer's and pipeline's business.

Padded clips (variable-length batches). The network is causal (unidirectional), so frames
appended *after* the end of a clip (right padding) can never change the outputs of its real
frames. The clean Keras 3 approach is therefore:

* pad on the right (any value; zeros are fine) and pass a per-frame ``sample_weight``
  (batch, frames) of 1 for real and 0 for padded frames to ``fit``/``evaluate``; compile the
  loss with ``reduction="mean_with_sample_weight"`` so the mean runs over real frames only
  (the default ``"sum_over_batch_size"`` divides by all frames, padding included).
* No ``keras.layers.Masking``: it infers padding from all-zero feature vectors, but real delta
  features are exactly zero in the first frames (zero rows are prepended by design).
* An explicit boolean mask (batch, frames) can still be passed as ``model(x, mask=mask)``; the
  functional model hands it to every LSTM, which skips masked steps (state carried unchanged).
  This also handles *left* padding: outputs of real frames then equal those of the unpadded clip.
  Keras then warns that the model "does not support masking and will destroy the mask": that
  concerns only the mask of the model's *output*; the LSTMs inside do use it (tested).

Difference from the original worth knowing when importing its released weights: Keras 2.2's
LSTM default ``recurrent_activation`` was ``'hard_sigmoid'`` = clip(0.2 x + 0.5, 0, 1), while
Keras 3's ``'hard_sigmoid'`` is relu6(x + 3) / 6 (slope 1/6). We default to ``'sigmoid'``
(the Keras 3 default); pass ``recurrent_activation="keras2_hard_sigmoid"`` to reproduce the
original gates exactly.
"""
from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="tf_talkface", name="keras2_hard_sigmoid")
def keras2_hard_sigmoid(x: Any) -> Any:
    """Keras 2.x ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)`` (the original LSTM's gates)."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


_ACTIVATIONS = {"keras2_hard_sigmoid": keras2_hard_sigmoid}


def build_lstm(input_dim: int, units: int = 256, output_dim: int = 136, num_layers: int = 4,
               dropout: float = 0.2, recurrent_dropout: float = 0.2, name: str = "lstm",
               recurrent_activation: str | Any = "sigmoid") -> keras.Model:
    """Build the Eskimez et al. 2018 stacked-LSTM model (functional Keras model).

    Args:
        input_dim: features per frame (128 * (context + 1) for the 2018 recipe).
        units: units of the first ``num_layers - 1`` LSTMs (256 in the released models).
        output_dim: units of the last LSTM = outputs per frame (136).
        num_layers: number of stacked LSTMs (4).
        dropout, recurrent_dropout: input / recurrent dropout of every LSTM (0.2 each).
        name: model name.
        recurrent_activation: gate activation; ``"sigmoid"`` (default) or
            ``"keras2_hard_sigmoid"`` to match the original Keras 2.2 weights (see module doc).

    Returns:
        ``keras.Model``: float32 (batch, frames, input_dim) -> float32 (batch, frames, output_dim),
        frames at 25 fps, variable length. Outputs lie in (0, 1) (sigmoid cell activation).
        Accepts ``model(x, mask=bool (batch, frames))``; for right-padded batches prefer
        per-frame ``sample_weight`` (module docstring).

    Raises:
        ValueError: non-positive sizes or ``num_layers < 1``.
    """
    if input_dim < 1 or units < 1 or output_dim < 1 or num_layers < 1:
        raise ValueError(f"sizes must be positive (input_dim={input_dim}, units={units}, "
                         f"output_dim={output_dim}, num_layers={num_layers})")
    rec_act = _ACTIVATIONS.get(recurrent_activation, recurrent_activation) \
        if isinstance(recurrent_activation, str) else recurrent_activation
    inputs = keras.Input(shape=(None, input_dim), dtype="float32", name="features")
    x = inputs
    for i in range(num_layers):
        x = keras.layers.LSTM(
            output_dim if i == num_layers - 1 else units,
            activation="sigmoid", recurrent_activation=rec_act,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=True, name=f"lstm{i + 1}")(x)
    return keras.Model(inputs, x, name=name)
