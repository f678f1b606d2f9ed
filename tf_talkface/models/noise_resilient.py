"""Noise-resilient (NR) training of the 2020 CNN.

Source: Eskimez et al. 2020, reference.md "Noise-resilient (NR) training".

Loss = ``w_clean * L1(pred(clean), y) + w_noisy * L1(pred(noisy), y)
+ w_feat * MSE(features(clean), features(noisy))`` with defaults (1, 1, 1e-3) as in the paper.
Mixing the noise (gain, SNR) is the data pipeline's job; this module only consumes pairs.

Batch structure (standard Keras ``(x, y)`` / ``(x, y, sample_weight)``):

* ``x = (noisy, clean)`` for a plain CNN, ``(noisy, clean, condition)`` for a TC CNN; a dict with
  keys ``"noisy"``, ``"clean"`` (and ``"condition"``) also works. ``noisy``/``clean``: float32
  (batch, samples) padded+scaled waveforms of the same clip (same length); ``condition``:
  float32 (batch, F, n_out), teacher forcing (see ``cnn.teacher_forcing_condition``).
* ``y``: float32 (batch, F, n_out) targets (6 PCA coefficients per 40 ms frame).
* ``sample_weight`` (optional): float (batch, F) per-frame weights, 0 on padded frames. Both L1
  terms and the feature term are weighted means over frames (a frame's feature term is the MSE of
  its own 2240-sample window, as in the original, so padded frames drop out exactly).

How the terms match the original's per-window definitions (same numbers, computed fully
convolutionally): L1 = mean over frames and outputs of |pred - y|; feature MSE = mean over
frames of the MSE between the clean and noisy (122 x 512) window features, i.e. each trunk
position is weighted by how many (weighted) windows read it. Features are the trunk output after
the last LeakyReLU + Dropout. Clean and noisy inputs go through the network as one concatenated
batch (independent dropout masks per example).

Under ``tf.distribute`` each replica computes these means on its own share of the batch and
their gradients are averaged (exact for equal per-replica frame weights, as with unpadded clips).

Reported metrics: ``loss`` (weighted total), ``l1_clean``, ``l1_noisy``, ``feat_mse``; in
validation (``test_step``, dropout off) the same names, prefixed ``val_`` by ``fit``.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_talkface.models.cnn import SpeechToLandmarkCNN


def _frame_weights(sample_weight: Any, pred: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(pred)[:2]
    if sample_weight is None:
        return tf.ones(shape, tf.float32)
    w = tf.cast(sample_weight, tf.float32)
    if w.shape.rank == 1:  # per-clip weights
        w = w[:, None]
    elif w.shape.rank == 3:  # (batch, F, 1)
        w = w[..., 0]
    return tf.broadcast_to(w, shape)


def weighted_l1(pred: tf.Tensor, target: tf.Tensor, frame_weights: tf.Tensor,
                dim_weights: Any = None) -> tf.Tensor:
    """Mean |pred - target| over outputs, then weighted mean over (batch, frames). Scalar float32.

    pred, target: (batch, F, n_out); frame_weights: (batch, F); dim_weights: optional (n_out,)
    per-output weights (e.g. ``1 / std`` of standardised targets). Returns 0 if all weights are 0.
    """
    diff = tf.abs(tf.cast(pred, tf.float32) - tf.cast(target, tf.float32))
    if dim_weights is not None:
        diff = diff * tf.constant(np.asarray(dim_weights, np.float32))
    per_frame = tf.reduce_mean(diff, -1)
    return tf.math.divide_no_nan(tf.reduce_sum(per_frame * frame_weights),
                                 tf.reduce_sum(frame_weights))


def window_feature_mse(feat_a: tf.Tensor, feat_b: tf.Tensor, frame_weights: tf.Tensor,
                       kernel: int, stride: int) -> tf.Tensor:
    """Weighted mean over frames of the per-window feature MSE, from whole-clip trunk features.

    Frame ``k``'s window features are trunk rows ``stride*k .. stride*k + kernel - 1``
    (122 x 512 = the original's 62464-vector). Computed as
    ``sum_j cov_j * mean_c (a - b)^2_j / (kernel * sum_k w_k)`` with ``cov_j`` = summed weights of
    the windows covering row ``j``.

    Args:
        feat_a, feat_b: float (batch, L, C) trunk features.
        frame_weights: float32 (batch, F).
        kernel, stride: head kernel/stride in trunk rows (122, 20).

    Returns:
        scalar float32 (0 if all weights are 0).
    """
    d = tf.reduce_mean(tf.square(tf.cast(feat_a, tf.float32) - tf.cast(feat_b, tf.float32)), -1)
    rows = tf.range(tf.shape(d)[1])[None, :]
    starts = stride * tf.range(tf.shape(frame_weights)[1])[:, None]
    cover = tf.cast((rows >= starts) & (rows < starts + kernel), tf.float32)  # (F, L)
    cov = tf.matmul(frame_weights, cover)  # (batch, L)
    return tf.math.divide_no_nan(tf.reduce_sum(cov * d),
                                 kernel * tf.reduce_sum(frame_weights))


@keras.saving.register_keras_serializable(package="tf_talkface", name="DimWeightedLoss")
class DimWeightedLoss(keras.losses.Loss):
    """L1 or MSE with a weight per output dimension, averaged over dimensions per frame; Keras'
    sample weights then weight frames (``reduction="mean_with_sample_weight"``).

    With ``weights = 1 / std`` (L1) or ``1 / std**2`` (MSE) it is the loss on standardised
    targets of a model ending in :class:`~tf_talkface.models.layers.TargetScale`; mouth
    coordinates can be weighted up on top (issue 11).

    With ``velocity > 0`` (sequences ``(B, T, dim)`` only) the same weighted error of the
    frame-to-frame differences (per 40-ms frame) is added, times ``velocity``, to the loss of
    the later frame of each pair (frame 0 adds none). It penalises a prediction that moves less
    or more than the truth, not only one that sits elsewhere (issue 11's optional velocity term;
    not in the papers).

    Args:
        kind: ``"l1"`` or ``"mse"``.
        weights: (dim,) floats.
        velocity: weight of the difference term (0 = off, the papers).
    """

    def __init__(self, kind: str = "l1", weights: Any = None, velocity: float = 0.0,
                 **kwargs: Any) -> None:
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        kwargs.setdefault("name", f"dim_weighted_{kind}")
        super().__init__(**kwargs)
        if kind not in ("l1", "mse"):
            raise ValueError(f"kind {kind!r}: 'l1' or 'mse'")
        self.kind = kind
        self.weights = None if weights is None else [float(v) for v in weights]
        self.velocity = float(velocity)

    def _error(self, d: Any) -> Any:
        d = tf.abs(d) if self.kind == "l1" else tf.square(d)
        if self.weights is not None:
            d = d * tf.constant(self.weights, tf.float32)
        return tf.reduce_mean(d, -1)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        d = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
        loss = self._error(d)
        if self.velocity:
            if d.shape.rank != 3:
                raise ValueError(f"velocity term needs (batch, frames, dim) targets, got {d.shape}")
            dv = self._error(d[:, 1:] - d[:, :-1])
            loss = loss + self.velocity * tf.pad(dv, [[0, 0], [1, 0]])
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(kind=self.kind, weights=self.weights, velocity=self.velocity)
        return config


@keras.saving.register_keras_serializable(package="tf_talkface")
class NoiseResilientModel(keras.Model):
    """Wraps a :class:`SpeechToLandmarkCNN` (plain or TC) for noise-resilient training.

    Use: ``nr = NoiseResilientModel(build_cnn()); nr.compile(optimizer=keras.optimizers.Adam(1e-4,
    beta_1=0.5)); nr.fit(ds)`` with the batch structure of the module docstring. No ``loss``
    argument to ``compile``: the loss is fixed here. ``nr(inputs)`` / ``nr.predict`` run the
    wrapped model (``inputs`` = waveform, or ``(waveform, condition)`` for TC); ``nr.model`` is
    the wrapped network (export that).

    Args:
        model: the network; must be a :class:`SpeechToLandmarkCNN` (needs trunk features).
        w_clean, w_noisy, w_feat: loss weights (1, 1, 1e-3 as in the paper).
        dim_weights: optional (n_out,) floats weighting each output's L1 (in the model's output
            units); default ``model.loss_dim_weights`` (``1 / std``: the L1 of standardised
            targets, or plain L1). ``train`` passes mouth-weighted component weights here
            (``--component-weights mouth``, issue 11; our change).

    Raises:
        TypeError: ``model`` is not a :class:`SpeechToLandmarkCNN`.
        ValueError: ``dim_weights`` has not ``n_out`` values.
    """

    def __init__(self, model: SpeechToLandmarkCNN, w_clean: float = 1.0, w_noisy: float = 1.0,
                 w_feat: float = 1e-3, dim_weights: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(model, SpeechToLandmarkCNN):
            raise TypeError("NoiseResilientModel needs a SpeechToLandmarkCNN (build_cnn / "
                            f"build_cnn_tc), got {type(model).__name__}")
        self.model = model
        self.w_clean = float(w_clean)
        self.w_noisy = float(w_noisy)
        self.w_feat = float(w_feat)
        self.dim_weights = None if dim_weights is None else [float(v) for v in dim_weights]
        if self.dim_weights is not None and len(self.dim_weights) != model.n_out:
            raise ValueError(f"dim_weights: {len(self.dim_weights)} values for {model.n_out} outputs")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.l1_clean_tracker = keras.metrics.Mean(name="l1_clean")
        self.l1_noisy_tracker = keras.metrics.Mean(name="l1_noisy")
        self.feat_tracker = keras.metrics.Mean(name="feat_mse")
        self.build(model.call_input_shape)

    def build(self, input_shape: Any = None) -> None:
        """No weights of its own: the wrapped model is built in its constructor."""
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.l1_clean_tracker, self.l1_noisy_tracker, self.feat_tracker]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.model(inputs, training=training)

    def _unpack(self, x: Any) -> tuple[Any, Any, Any]:
        if isinstance(x, dict):
            return x["noisy"], x["clean"], x.get("condition")
        if not isinstance(x, (list, tuple)) or len(x) not in (2, 3):
            raise ValueError("NoiseResilientModel expects x = (noisy, clean) or "
                             "(noisy, clean, condition)")
        return x[0], x[1], (x[2] if len(x) == 3 else None)

    def compute_terms(self, data: Any, training: bool) -> dict[str, tf.Tensor]:
        """The three loss terms and the weighted total for one batch (see module docstring).

        Returns:
            dict of scalar float32 tensors: ``loss``, ``l1_clean``, ``l1_noisy``, ``feat_mse``.

        Raises:
            ValueError: wrong batch structure or a missing/extra condition for the model type.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        noisy, clean, condition = self._unpack(x)
        if self.model.temporal_condition != (condition is not None):
            raise ValueError("a TC model needs x = (noisy, clean, condition); a plain one "
                             "x = (noisy, clean)")
        n = tf.shape(noisy)[0]
        wave = tf.concat([tf.cast(noisy, tf.float32), tf.cast(clean, tf.float32)], 0)
        inputs = wave if condition is None else (wave, tf.concat([condition, condition], 0))
        pred, feats = self.model(inputs, training=training, return_features=True)
        pred_noisy, pred_clean = pred[:n], pred[n:]
        w = _frame_weights(sample_weight, pred_noisy)
        dims = self.dim_weights if self.dim_weights is not None else self.model.loss_dim_weights
        l1_clean = weighted_l1(pred_clean, y, w, dims)
        l1_noisy = weighted_l1(pred_noisy, y, w, dims)
        feat = window_feature_mse(feats[n:], feats[:n], w, self.model.head.kernel_size[0],
                                  self.model.head.strides[0])
        total = self.w_clean * l1_clean + self.w_noisy * l1_noisy + self.w_feat * feat
        if self.losses:
            total = total + tf.add_n([tf.cast(l, tf.float32) for l in self.losses])
        return {"loss": total, "l1_clean": l1_clean, "l1_noisy": l1_noisy, "feat_mse": feat}

    def _update(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(terms["loss"])
        self.l1_clean_tracker.update_state(terms["l1_clean"])
        self.l1_noisy_tracker.update_state(terms["l1_noisy"])
        self.feat_tracker.update_state(terms["feat_mse"])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        # tf.distribute sums gradients over replicas: average the per-replica losses instead.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.compute_terms(data, training=True)
            scaled = self.optimizer.scale_loss(terms["loss"] / replicas)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._update(terms)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        return self._update(self.compute_terms(data, training=False))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(model=keras.saving.serialize_keras_object(self.model),
                      w_clean=self.w_clean, w_noisy=self.w_noisy, w_feat=self.w_feat,
                      dim_weights=self.dim_weights)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any],
                    custom_objects: Any = None) -> "NoiseResilientModel":
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                      custom_objects=custom_objects)
        return cls(model=model, **config)
