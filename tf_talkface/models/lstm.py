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

from typing import Any, Sequence

import keras
import numpy as np

from tf_talkface.models.layers import TargetScale


@keras.saving.register_keras_serializable(package="tf_talkface", name="keras2_hard_sigmoid")
def keras2_hard_sigmoid(x: Any) -> Any:
    """Keras 2.x ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)`` (the original LSTM's gates)."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


_ACTIVATIONS = {"keras2_hard_sigmoid": keras2_hard_sigmoid}


def build_lstm(input_dim: int, units: int = 256, output_dim: int = 136, num_layers: int = 4,
               dropout: float = 0.2, recurrent_dropout: float = 0.2, name: str = "lstm",
               recurrent_activation: str | Any = "sigmoid", readout: str = "lstm",
               target_mean: Sequence[float] | None = None,
               target_std: Sequence[float] | None = None) -> keras.Model:
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
        readout: ``"lstm"`` (the paper: the last LSTM has ``output_dim`` units and its sigmoid
            cell activation bounds the outputs to (0, 1)) or ``"linear"`` (our change, issue
            11: all ``num_layers`` LSTMs have ``units`` units and a ``Dense(output_dim)``
            named ``readout`` follows, so standardised targets can be reached).
        target_mean, target_std: optional ``output_dim`` floats: a fixed
            :class:`~tf_talkface.models.layers.TargetScale` (``y * std + mean``) after the
            read-out, named ``target_scale`` (training statistics of the targets).

    Returns:
        ``keras.Model``: float32 (batch, frames, input_dim) -> float32 (batch, frames, output_dim),
        frames at 25 fps, variable length. With the paper's read-out the outputs lie in (0, 1)
        (sigmoid cell activation).
        Accepts ``model(x, mask=bool (batch, frames))``; for right-padded batches prefer
        per-frame ``sample_weight`` (module docstring).

    Raises:
        ValueError: non-positive sizes, ``num_layers < 1``, an unknown ``readout``, or target
            statistics of the wrong length.
    """
    if readout not in ("lstm", "linear"):
        raise ValueError(f"readout {readout!r}: choose 'lstm' (paper) or 'linear'")
    if input_dim < 1 or units < 1 or output_dim < 1 or num_layers < 1:
        raise ValueError(f"sizes must be positive (input_dim={input_dim}, units={units}, "
                         f"output_dim={output_dim}, num_layers={num_layers})")
    rec_act = _ACTIVATIONS.get(recurrent_activation, recurrent_activation) \
        if isinstance(recurrent_activation, str) else recurrent_activation
    inputs = keras.Input(shape=(None, input_dim), dtype="float32", name="features")
    x = inputs
    for i in range(num_layers):
        x = keras.layers.LSTM(
            output_dim if i == num_layers - 1 and readout == "lstm" else units,
            activation="sigmoid", recurrent_activation=rec_act,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=True, name=f"lstm{i + 1}")(x)
    if readout == "linear":
        x = keras.layers.Dense(output_dim, name="readout")(x)
    if target_mean is not None or target_std is not None:
        if target_mean is None or target_std is None or len(target_mean) != output_dim \
                or len(target_std) != output_dim:
            raise ValueError(f"target_mean and target_std need {output_dim} values each")
        x = TargetScale(target_mean, target_std, name="target_scale")(x)
    return keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------- fast inference

class StackedLSTMInference:
    """Inference-only twin of a stacked-LSTM Keras model: same weights, same cell equations,
    4-5x faster on CPU than calling the Keras model (issue 6, "Fast offline generation").

    Why faster: Keras' LSTM (no cuDNN on CPU) computes ``x_t @ kernel`` inside its per-step
    loop, together with masking and dropout bookkeeping; this twin computes the input
    projection of a whole layer at once (``X @ kernel + bias``, one matrix product over all
    frames) and keeps only ``h @ recurrent_kernel`` and the gate arithmetic in the
    ``tf.while_loop`` (9 ops per step; one activation call on all 4 gates when the cell and
    gate activations are the same, as in the 2018 model). Layers run one after the other over
    the whole sequence. Plain TF ops only, so it goes into SavedModels; no XLA needed (XLA on
    Keras' LSTM loop was 6x *slower* here, see docs/performance.md).

    Gate order and equations are Keras' (``i, f, c, o``; ``c' = rec(f) c + rec(i) act(z_c)``,
    ``h' = rec(o) act(c')``). Exactness vs the Keras model: float32 round-off (~2e-7 on the
    2018 model's outputs; tests/test_lstm_fast.py). It reads the layers' variables, so later
    weight changes (training, ``load_weights``) are seen.

    Args:
        model: a Keras model whose ``keras.layers.LSTM`` layers form a plain stack (each LSTM
            feeds the next, ``return_sequences=True``; other layers such as Dropout are
            identity at inference). Built by :func:`build_lstm`.

    Raises:
        ValueError: no LSTM layers, an LSTM with ``return_sequences=False``, ``go_backwards``,
            or an activation that is not a Keras activation function.
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        layers = [l for l in model.layers if isinstance(l, keras.layers.LSTM)]
        if not layers:
            raise ValueError(f"model {model.name!r} has no LSTM layers")
        self.layers = []
        for l in layers:
            if not l.return_sequences or l.go_backwards:
                raise ValueError(f"LSTM layer {l.name!r}: only forward layers with "
                                 "return_sequences=True are supported")
            cell = l.cell
            # the layers' own tf.Variables (not constants): a SavedModel stores them once in
            # variables/, shared by all its signatures
            var = lambda v: getattr(v, "value", v)  # noqa: E731 - KerasVariable -> tf.Variable
            self.layers.append(dict(
                kernel=var(cell.kernel), recurrent=var(cell.recurrent_kernel),
                bias=(var(cell.bias) if cell.use_bias
                      else tf.zeros([cell.kernel.shape[1]], tf.float32)),
                units=int(cell.units), act=cell.activation, rec=cell.recurrent_activation,
                same=_same_activation(cell.activation, cell.recurrent_activation)))
        self.input_dim = int(self.layers[0]["kernel"].shape[0])
        self.units = [d["units"] for d in self.layers]
        self.output_dim = self.units[-1]
        # read-out after the stack (build_lstm(readout="linear") and/or target statistics)
        self.dense = self.scale = None
        for l in model.layers[model.layers.index(layers[-1]) + 1:]:
            if isinstance(l, keras.layers.Dense):
                if self.dense is not None or l.activation.__name__ != "linear":
                    raise ValueError(f"layer {l.name!r}: only one linear Dense read-out is supported")
                self.dense = dict(kernel=var(l.kernel), bias=var(l.bias) if l.use_bias else None)
                self.output_dim = int(l.units)
            elif isinstance(l, TargetScale):
                self.scale = l
            elif not isinstance(l, keras.layers.Dropout):
                raise ValueError(f"layer {l.name!r} ({type(l).__name__}) after the LSTM stack "
                                 "is not supported")

    def zero_states(self, batch: Any = 1) -> list:
        """Initial states ``[h1, c1, h2, c2, ...]``: float32 zeros (batch, units) per layer."""
        import tensorflow as tf

        return [tf.zeros([batch, u], tf.float32) for u in self.units for _ in (0, 1)]

    def __call__(self, x: Any, states: list | None = None, return_states: bool = False) -> Any:
        """Run the stack over a sequence (graph-compatible; call inside ``tf.function``).

        Args:
            x: float32 (batch, frames, input_dim); frames may be 0.
            states: optional ``[h1, c1, ..., hL, cL]``, each float32 (batch, units_l): the
                recurrent state to start from (zeros when omitted), e.g. carried between
                chunks of a stream.
            return_states: also return the final states (same layout).

        Returns:
            float32 (batch, frames, output_dim), or ``(outputs, states)``.
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        if states is None:
            states = self.zero_states(tf.shape(x)[0])
        out_states = []
        for i, layer in enumerate(self.layers):
            x, h, c = self._layer(x, states[2 * i], states[2 * i + 1], **layer)
            out_states += [h, c]
        x = self.readout(x)
        return (x, out_states) if return_states else x

    def readout(self, h: Any) -> Any:
        """The read-out after the last LSTM (identity for the paper's model): float32
        (..., units) -> (..., output_dim), graph-compatible."""
        import tensorflow as tf

        if self.dense is not None:
            h = tf.tensordot(h, self.dense["kernel"], 1)
            if self.dense["bias"] is not None:
                h = h + self.dense["bias"]
        if self.scale is not None:
            h = self.scale(h)
        return h

    def readout_numpy(self, h: np.ndarray) -> np.ndarray:
        """:meth:`readout` in numpy (the live streaming path), float32."""
        h = np.asarray(h, np.float32)
        if self.dense is not None:
            h = h @ np.asarray(self.dense["kernel"], np.float32)
            if self.dense["bias"] is not None:
                h = h + np.asarray(self.dense["bias"], np.float32)
        if self.scale is not None:
            h = self.scale.numpy(h)
        return h.astype(np.float32)

    @staticmethod
    def _cell(z, c, act, rec, same):
        """Keras' LSTM gate arithmetic on ``z`` (batch, 4 units): new ``(c, h)``."""
        import tensorflow as tf

        if same:
            zi, zf, zc, zo = tf.split(rec(z), 4, axis=1)
        else:
            zi, zf, zc, zo = tf.split(z, 4, axis=1)
            zi, zf, zo, zc = rec(zi), rec(zf), rec(zo), act(zc)
        c = zf * c + zi * zc
        return c, zo * act(c)

    @classmethod
    def _layer(cls, x, h0, c0, kernel, bias, recurrent, units, act, rec, same):
        import tensorflow as tf

        b, t = tf.shape(x)[0], tf.shape(x)[1]
        proj = tf.matmul(tf.reshape(x, [-1, tf.shape(kernel)[0]]), kernel) + bias
        proj = tf.transpose(tf.reshape(proj, [b, t, 4 * units]), [1, 0, 2])  # time-major
        inputs = tf.TensorArray(tf.float32, size=t).unstack(proj)
        outputs = tf.TensorArray(tf.float32, size=t, element_shape=tf.TensorShape([None, units]))

        def step(k, h, c, ys):
            c, h = cls._cell(inputs.read(k) + tf.matmul(h, recurrent), c, act, rec, same)
            return k + 1, h, c, ys.write(k, h)

        _, h, c, ys = tf.while_loop(lambda k, *_: k < t, step,
                                    (tf.constant(0), h0, c0, outputs))
        ys = tf.reshape(ys.stack(), [t, b, units])  # also right for t = 0
        return tf.transpose(ys, [1, 0, 2]), h, c


def _same_activation(a: Any, b: Any) -> bool:
    name = lambda f: getattr(f, "__name__", None)  # noqa: E731
    return a is b or (name(a) is not None and name(a) == name(b))
