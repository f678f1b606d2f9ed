"""Eskimez et al. 2020 "SPCH2FLM" (1D-CNN on the raw 8 kHz waveform), fully convolutional.

Source: reference.md, "Eskimez et al. 2020 — Model SPCH2FLM, Autoregressive". The original
evaluates the network once per output frame on a 2240-sample window (7 frames x 320 samples,
centred on the frame): a trunk of 4 ``Conv1D(kernel 21, stride 2, valid)`` layers (64, 128, 256,
512 channels, each followed by LeakyReLU(0.3) and Dropout(0.2)) gives a (122, 512) feature map,
which is flattened (62464 values) and fed to ``Dense(n_out)`` + LeakyReLU(0.3).

Here the same network is applied to a whole clip at once (differs on purpose, same numbers):

* The trunk has total stride 2**4 = 16 and receptive field 21 + 20*(2+4+8) = 301 samples, so the
  trunk output at index ``j`` reads padded samples ``[16 j, 16 j + 300]``. A window starting at
  padded sample ``320 k`` therefore yields exactly the trunk outputs ``j = 20 k ... 20 k + 121``
  of the whole-clip trunk (320 / 16 = 20 is an integer, so the stride grids line up).
* The Dense head on the (L-major) flattened (122, 512) map is exactly a
  ``Conv1D(n_out, kernel_size=122, strides=20)`` over the whole-clip trunk output: output ``k``
  reads trunk outputs ``20 k ... 20 k + 121``, i.e. window ``k``. Convert a Dense kernel with
  :func:`dense_kernel_to_conv_head`.
* Overlapping windows share their trunk work: for a 75-frame clip 5.9x fewer
  multiply-adds than 75 separate windows (see ``flops_per_window_eval`` / ``flops_fully_conv``).

Time/length relations (all in samples at 8 kHz; frames at 25 fps, hop 320 samples = 40 ms):

* Frame ``k`` is predicted from raw samples ``[320 k - 1120, 320 k + 1120)`` (zeros outside the
  clip), i.e. padded samples ``[320 k, 320 k + 2240)`` after 1120 zeros are prepended, as in the
  original generation code (zero-pad 1120 at both ends, window advancing 320 samples per frame).
* A raw clip of ``n`` samples has ``frames_for_samples(n) = ceil(n / 320)`` frames (one per
  320-sample hop whose window centre ``320 k`` lies inside the clip): 3 s = 24000 samples -> 75.
* The network needs ``padded_length(F) = 320 (F - 1) + 2240`` input samples for ``F`` frames.
  On an input of ``P`` samples it returns ``frames_for_padded_length(P) = floor((P - 2237) / 320)
  + 1`` frames (0 if ``P < 2237``): the last 3 samples of each 2240 window are never read by the
  valid-padding trunk. So padding a 24000-sample clip by 1120 at *both* ends (26240 samples) would
  give 76 frames; :func:`pad_and_scale` therefore prepends 1120 zeros and appends only as many as
  ``padded_length`` needs (800..1119), which yields exactly ``ceil(n / 320)`` frames.

Differences from the original, on purpose:

* Dropout is off at inference (``training=False``); the original leaves it on (a bug).
* When training on whole clips, overlapping windows share their trunk dropout masks (the original
  draws independent masks per window).
* :func:`generate_tc` runs the autoregressive recurrence in-graph (``tf.scan``) after computing
  the trunk and head for all frames at once; valid because only the final linear Dense reads the
  condition.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_talkface.audio.waveform import (  # noqa: F401 - the 2020 input framing, re-exported
    HOP, PAD, SAMPLE_RATE, WINDOW, frames_for_samples, pad_and_scale, pad_and_scale_tf,
    padded_length, samples_for_frames)
from tf_talkface.models.layers import TargetScale, TemporalFilter

TRUNK_FILTERS: tuple[int, ...] = (64, 128, 256, 512)
TRUNK_KERNEL: int = 21
TRUNK_STRIDE: int = 2
TOTAL_STRIDE: int = TRUNK_STRIDE ** len(TRUNK_FILTERS)
"""Total trunk stride in samples (16)."""
RECEPTIVE_FIELD: int = TRUNK_KERNEL + (TRUNK_KERNEL - 1) * sum(
    TRUNK_STRIDE ** i for i in range(1, len(TRUNK_FILTERS)))
"""Trunk receptive field in samples (21 + 20 * (2 + 4 + 8) = 301)."""


def trunk_length(n_samples: int, n_layers: int = len(TRUNK_FILTERS)) -> int:
    """Number of trunk output positions for an input of ``n_samples`` samples (valid convs).

    Each layer maps ``L -> floor((L - 21) / 2) + 1`` (0 if ``L < 21``). One 2240-sample window
    gives 1110, 545, 263, 122.
    """
    n = int(n_samples)
    for _ in range(n_layers):
        n = 0 if n < TRUNK_KERNEL else (n - TRUNK_KERNEL) // TRUNK_STRIDE + 1
    return n


HEAD_KERNEL: int = trunk_length(WINDOW)
"""Trunk positions per window (122): kernel size of the convolutional head."""
HEAD_STRIDE: int = HOP // TOTAL_STRIDE
"""Trunk positions per frame (320 / 16 = 20): stride of the convolutional head."""
FEATURE_DIM: int = HEAD_KERNEL * TRUNK_FILTERS[-1]
"""Flattened per-window feature size of the original (122 * 512 = 62464)."""
MIN_PADDED_LENGTH: int = TOTAL_STRIDE * (HEAD_KERNEL - 1) + RECEPTIVE_FIELD
"""Samples actually read for one frame (16 * 121 + 301 = 2237 <= 2240)."""

assert RECEPTIVE_FIELD == 301 and HEAD_KERNEL == 122 and HEAD_STRIDE * TOTAL_STRIDE == HOP


def frames_for_padded_length(n_padded: int) -> int:
    """Frames the network outputs for an input of ``n_padded`` samples.

    ``floor((P - 2237) / 320) + 1``, or 0 if ``P < 2237`` (the trunk never reads the last 3
    samples of a 2240 window). Equals ``F`` for ``padded_length(F) <= P < padded_length(F) + 317``.
    """
    n = int(n_padded)
    return 0 if n < MIN_PADDED_LENGTH else (n - MIN_PADDED_LENGTH) // HOP + 1


def dense_kernel_to_conv_head(kernel: np.ndarray, order: str = "LC") -> np.ndarray:
    """Convert the original head's Dense kernel to the conv-head kernel (122, 512, n_out).

    Args:
        kernel: (62464, n_out) Dense kernel acting on the flattened (122, 512) trunk map, or a
            PyTorch ``Linear.weight`` transposed to (62464, n_out).
        order: flatten order of that map. ``"LC"`` (Keras ``Flatten`` on (length, channels),
            index ``l * 512 + c``); ``"CL"`` (PyTorch ``view`` on (channels, length), index
            ``c * 122 + l`` — the original 2020 code).

    Returns:
        float array (122, 512, n_out) for ``Conv1D(n_out, 122, strides=20)``; the bias is unchanged.

    Raises:
        ValueError: wrong kernel size or unknown order.
    """
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] != FEATURE_DIM:
        raise ValueError(f"expected a ({FEATURE_DIM}, n_out) kernel, got {k.shape}")
    c = TRUNK_FILTERS[-1]
    if order == "LC":
        return k.reshape(HEAD_KERNEL, c, k.shape[1])
    if order == "CL":
        return k.reshape(c, HEAD_KERNEL, k.shape[1]).transpose(1, 0, 2)
    raise ValueError(f"order must be 'LC' or 'CL', got {order!r}")


def conv_head_to_dense_kernel(kernel: np.ndarray, order: str = "LC") -> np.ndarray:
    """Inverse of :func:`dense_kernel_to_conv_head`: (122, 512, n_out) -> (62464, n_out)."""
    k = np.asarray(kernel)
    if k.shape[:2] != (HEAD_KERNEL, TRUNK_FILTERS[-1]):
        raise ValueError(
            f"expected a ({HEAD_KERNEL}, {TRUNK_FILTERS[-1]}, n_out) kernel, got {k.shape}")
    if order == "LC":
        return k.reshape(FEATURE_DIM, k.shape[2])
    if order == "CL":
        return k.transpose(1, 0, 2).reshape(FEATURE_DIM, k.shape[2])
    raise ValueError(f"order must be 'LC' or 'CL', got {order!r}")


def _conv_macs(length_in: int, c_in: int, c_out: int, kernel: int, stride: int) -> int:
    length_out = 0 if length_in < kernel else (length_in - kernel) // stride + 1
    return length_out * c_out * c_in * kernel


def flops_fully_conv(n_frames: int, n_out: int = 6) -> int:
    """Multiply-adds of the fully-convolutional network on ``padded_length(n_frames)`` samples.

    Counts conv/dense MACs only (activations, biases ignored).
    """
    n, c_in, macs = padded_length(n_frames), 1, 0
    for c in TRUNK_FILTERS:
        macs += _conv_macs(n, c_in, c, TRUNK_KERNEL, TRUNK_STRIDE)
        n, c_in = (n - TRUNK_KERNEL) // TRUNK_STRIDE + 1, c
    return macs + _conv_macs(n, c_in, n_out, HEAD_KERNEL, HEAD_STRIDE)


def flops_per_window_eval(n_frames: int, n_out: int = 6) -> int:
    """Multiply-adds of the original per-window evaluation (one 2240 window per frame)."""
    return n_frames * flops_fully_conv(1, n_out)


def _check_inputs(n_out: int, hop: int, window: int) -> tuple[int, int]:
    if n_out < 1:
        raise ValueError(f"n_out must be >= 1, got {n_out}")
    if hop % TOTAL_STRIDE:
        raise ValueError(f"hop ({hop}) must be a multiple of the trunk stride {TOTAL_STRIDE}")
    head_kernel = trunk_length(window)
    if head_kernel < 1:
        raise ValueError(f"window ({window}) shorter than the trunk receptive field")
    return head_kernel, hop // TOTAL_STRIDE


@keras.saving.register_keras_serializable(package="tf_talkface")
class SpeechToLandmarkCNN(keras.Model):
    """SPCH2FLM (Eskimez et al. 2020), fully convolutional, optionally autoregressive ("TC").

    Call: ``model(waveform)`` (plain) or ``model((waveform, condition))`` (``temporal_condition``).

    Args (constructor):
        n_out: outputs per frame (6 PCA coefficients in the paper).
        temporal_condition: add the TC layer: ``Dense(n_out)`` (linear) on
            concat(head output, previous frame's coefficients).
        dropout: trunk dropout rate (0.2); active only with ``training=True``.
        negative_slope: LeakyReLU slope (0.3), after every conv and after the head.
        hop, window: samples per frame / per window (320, 2240 at 8 kHz); ``hop`` must be a
            multiple of 16. The head is ``Conv1D(n_out, trunk_length(window), strides=hop//16)``.

    Inputs:
        waveform: float32 (batch, samples), scaled and padded by :func:`pad_and_scale`
            (``padded_length(F)`` samples for F frames; any length >= 2237 works, giving
            ``frames_for_padded_length(samples)`` frames).
        target_mean, target_std: optional ``n_out`` floats: a fixed
            :class:`~tf_talkface.models.layers.TargetScale` ``y * std + mean`` at the very end
            (standardised targets, issue 11; our change). The network before it predicts
            standardised values; outputs stay in PCA units.
        condition (TC only): float32 (batch, F, n_out); ``condition[:, t]`` = ground-truth
            coefficients of frame ``t - 1`` (teacher forcing; the pipeline builds it, with the
            template face's coefficients at ``t = 0``).
        post_filter_frames: optional ``K`` >= 1 (plain model only): a
            :class:`~tf_talkface.models.layers.TemporalFilter` over +-K frames after everything
            else, in PCA units (issue 11; our change; fitted by :mod:`tf_talkface.post_filter`).
            Streaming then emits each frame K x 40 ms later.
        post_filter_padding: the filter's ``padding`` (``"zeros"``, the default of the
            checkpoints fitted before it existed, or ``"edge"``).

    Returns:
        float32 (batch, F, n_out); with ``return_features=True`` also the trunk output
        (batch, trunk_length(samples), 512) — the features of the noise-resilient loss (after the
        last LeakyReLU + Dropout; frame ``k``'s original 62464-vector is rows ``20k .. 20k+121``).

    Initialisation: glorot_uniform (= Xavier uniform) kernels, zero biases.

    SavedModel: ``model.export(path, input_signature=[tf.TensorSpec((None, None), tf.float32)])``
    (Keras asks subclassed models for a signature until they have been called once); for TC
    generation add an ``ExportArchive`` endpoint wrapping :func:`generate_tc`.
    """

    def __init__(self, n_out: int = 6, temporal_condition: bool = False, dropout: float = 0.2,
                 negative_slope: float = 0.3, hop: int = HOP, window: int = WINDOW,
                 target_mean: Any = None, target_std: Any = None, post_filter_frames: int = 0,
                 post_filter_padding: str = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        head_kernel, head_stride = _check_inputs(n_out, hop, window)
        self.n_out = int(n_out)
        self.temporal_condition = bool(temporal_condition)
        self.dropout_rate = float(dropout)
        self.negative_slope = float(negative_slope)
        self.hop = int(hop)
        self.window = int(window)
        self.convs = [keras.layers.Conv1D(
            f, TRUNK_KERNEL, strides=TRUNK_STRIDE, padding="valid",
            kernel_initializer="glorot_uniform", name=f"conv{i + 1}")
            for i, f in enumerate(TRUNK_FILTERS)]
        self.acts = [keras.layers.LeakyReLU(negative_slope=negative_slope, name=f"lrelu{i + 1}")
                     for i in range(len(TRUNK_FILTERS))]
        self.drops = [keras.layers.Dropout(dropout, name=f"dropout{i + 1}")
                      for i in range(len(TRUNK_FILTERS))]
        self.head = keras.layers.Conv1D(n_out, head_kernel, strides=head_stride, padding="valid",
                                        kernel_initializer="glorot_uniform", name="head")
        self.head_act = keras.layers.LeakyReLU(negative_slope=negative_slope, name="head_lrelu")
        self.tc_dense = (keras.layers.Dense(n_out, kernel_initializer="glorot_uniform",
                                            name="tc_dense") if temporal_condition else None)
        self.target_scale = None
        if target_mean is not None or target_std is not None:
            if target_mean is None or target_std is None or len(target_mean) != n_out \
                    or len(target_std) != n_out:
                raise ValueError(f"target_mean and target_std need {n_out} values each")
            self.target_scale = TargetScale(target_mean, target_std, name="target_scale")
        self.post_filter = None
        if post_filter_frames:
            if temporal_condition:
                raise ValueError("post_filter_frames: the autoregressive (TC) model has no "
                                 "post-filter (its next frame depends on the filtered one)")
            self.post_filter = TemporalFilter(post_filter_frames, n_out, padding=post_filter_padding,
                                              name="post_filter")
        self.build(self.call_input_shape)

    @property
    def call_input_shape(self) -> Any:
        """Input shape(s) of :meth:`call`: ``(None, None)`` or, for TC,
        ``((None, None), (None, None, n_out))`` (recorded by Keras for the default serving
        signature of SavedModel export)."""
        wave = (None, None)
        return (wave, (None, None, self.n_out)) if self.temporal_condition else wave

    def build(self, input_shape: Any = None) -> None:
        """Create all weights (any batch size and length); ``input_shape`` is only recorded.

        Called by the constructor, so the model is always built (weights exist before the first
        call, as ``.keras`` loading and ``fit`` expect).
        """
        shape: tuple = (None, None, 1)
        for conv, act, drop in zip(self.convs, self.acts, self.drops):
            conv.build(shape)
            shape = (None, None, conv.filters)
            act.build(shape)
            drop.build(shape)
        self.head.build(shape)
        self.head_act.build((None, None, self.n_out))
        if self.tc_dense is not None:
            self.tc_dense.build((None, None, 2 * self.n_out))
        self.built = True

    def _split(self, inputs: Any) -> tuple[tf.Tensor, tf.Tensor | None]:
        if self.temporal_condition:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError("a temporal-condition model takes (waveform, condition)")
            return inputs[0], inputs[1]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError("this model takes a single waveform input")
            inputs = inputs[0]
        return inputs, None

    def trunk(self, waveform: tf.Tensor, training: bool | None = False) -> tf.Tensor:
        """Trunk features: (batch, samples) -> (batch, trunk_length(samples), 512) float32."""
        x = keras.ops.expand_dims(keras.ops.cast(waveform, "float32"), -1)
        for conv, act, drop in zip(self.convs, self.acts, self.drops):
            x = drop(act(conv(x)), training=training)
        return x

    def head_outputs(self, features: tf.Tensor) -> tf.Tensor:
        """Head (conv = Dense per window) + LeakyReLU: trunk features -> (batch, F, n_out)."""
        return self.head_act(self.head(features))

    def call(self, inputs: Any, training: bool | None = None,
             return_features: bool = False, post_filter: bool = True) -> Any:
        """Forward pass; inputs/outputs as in the class docstring (dropout only if ``training``).
        ``post_filter=False`` skips the post-filter (the SavedModel applies it itself after
        continuing each clip of a padded batch beyond its last frame as the filter's padding).

        Raises:
            ValueError: input structure does not match ``temporal_condition``.
        """
        waveform, condition = self._split(inputs)
        feats = self.trunk(waveform, training=training)
        y = self.head_outputs(feats)
        if self.tc_dense is not None:
            y = self.tc_dense(keras.ops.concatenate([y, keras.ops.cast(condition, y.dtype)], -1))
        if self.target_scale is not None:
            y = self.target_scale(y)
        if self.post_filter is not None and post_filter:
            y = self.post_filter(y)
        return (y, feats) if return_features else y

    @property
    def loss_dim_weights(self) -> np.ndarray | None:
        """Per-output loss weights ``1 / std`` when the model has target statistics (so an L1
        on its outputs equals the L1 on standardised targets), else ``None``. (n_out,) float32."""
        if self.target_scale is None:
            return None
        return (1.0 / np.asarray(self.target_scale.std, np.float64)).astype(np.float32)

    def generate(self, waveform: tf.Tensor,
                 initial_condition: tf.Tensor | None = None) -> tf.Tensor:
        """Inference (dropout off). TC: autoregressive, see :func:`generate_tc`.

        Args:
            waveform: float32 (batch, samples), padded and scaled.
            initial_condition: TC only: float32 (batch, n_out) or (n_out,): coefficients of the
                frame before the first (the template face's; zeros when the targets are
                template-relative). Ignored otherwise.

        Returns:
            float32 (batch, F, n_out).
        """
        if self.tc_dense is None:
            return self(waveform, training=False)
        return generate_tc(self, waveform, initial_condition)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_out=self.n_out, temporal_condition=self.temporal_condition,
                      dropout=self.dropout_rate, negative_slope=self.negative_slope,
                      hop=self.hop, window=self.window)
        if self.target_scale is not None:
            config.update(target_mean=self.target_scale.mean, target_std=self.target_scale.std)
        if self.post_filter is not None:
            config.update(post_filter_frames=self.post_filter.frames,
                          post_filter_padding=self.post_filter.padding)
        return config


def build_cnn(n_out: int = 6, name: str = "cnn", **kwargs: Any) -> SpeechToLandmarkCNN:
    """Build the plain SPCH2FLM (Eskimez et al. 2020 "1D-CNN"; see :class:`SpeechToLandmarkCNN`).

    Input (batch, samples) float32 padded+scaled waveform -> output (batch, frames, n_out) float32.
    ``model(x, return_features=True)`` also returns the trunk features. Extra ``kwargs``
    (dropout, negative_slope, hop, window) go to :class:`SpeechToLandmarkCNN`.
    """
    return SpeechToLandmarkCNN(n_out=n_out, temporal_condition=False, name=name, **kwargs)


def build_cnn_tc(n_out: int = 6, name: str = "cnn_tc", **kwargs: Any) -> SpeechToLandmarkCNN:
    """Build the autoregressive "temporal condition" SPCH2FLM (Eskimez et al. 2020 "1D_CNN_TC").

    Training input (teacher forcing): ``(waveform (batch, samples), condition (batch, F, n_out))``
    with ``condition[:, t]`` = target of frame ``t - 1``; output (batch, F, n_out).
    Inference: :func:`generate_tc`.
    """
    return SpeechToLandmarkCNN(n_out=n_out, temporal_condition=True, name=name, **kwargs)


def _unwrap(model: Any) -> SpeechToLandmarkCNN:
    inner = model
    while not isinstance(inner, SpeechToLandmarkCNN) and hasattr(inner, "model"):
        inner = inner.model
    if not isinstance(inner, SpeechToLandmarkCNN):
        raise TypeError(f"expected a SpeechToLandmarkCNN (or a wrapper of one), got {type(model)}")
    return inner


def teacher_forcing_condition(targets: tf.Tensor, initial_condition: tf.Tensor) -> tf.Tensor:
    """Condition input for TC training: targets shifted one frame later.

    Args:
        targets: float (batch, F, n_out) ground-truth coefficients.
        initial_condition: float (batch, n_out) or (n_out,): the "frame -1" value (template face).

    Returns:
        float32 (batch, F, n_out): ``[c_{-1}, y_0, ..., y_{F-2}]``.
    """
    y = tf.convert_to_tensor(targets, tf.float32)
    c0 = tf.convert_to_tensor(initial_condition, tf.float32)
    c0 = tf.broadcast_to(c0, tf.shape(y[:, 0]))
    return tf.concat([c0[:, None], y[:, :-1]], axis=1)


def generate_tc(model: Any, waveform_padded: tf.Tensor, initial_condition: tf.Tensor | None = None
                ) -> tf.Tensor:
    """Autoregressive TC generation, in-graph (Eskimez et al. 2020 demo, dropout off).

    ``c_t = Dense(concat(h_t, c_{t-1}))`` with ``h`` = head outputs of all frames (computed at
    once) and ``c_{-1} = initial_condition``. The Dense is split as ``h_t W_h + b + c_{t-1} W_c``
    and the recurrence runs in ``tf.scan``; with target statistics each step is read out
    (``* std + mean``) before it is fed back, as the model's call does. The demo's ``tcboost``
    display factor is not applied.

    Args:
        model: a TC :class:`SpeechToLandmarkCNN` (or a wrapper with ``.model``, e.g.
            ``NoiseResilientModel``).
        waveform_padded: float32 (batch, samples), from :func:`pad_and_scale`.
        initial_condition: float32 (batch, n_out) or (n_out,); ``None`` = zeros.

    Returns:
        float32 (batch, F, n_out).

    Raises:
        TypeError: not a CNN model. ValueError: the model has no temporal condition.
    """
    net = _unwrap(model)
    if net.tc_dense is None:
        raise ValueError("generate_tc needs a temporal-condition model (build_cnn_tc)")
    h = net.head_outputs(net.trunk(waveform_padded, training=False))
    h = tf.convert_to_tensor(h, tf.float32)
    n = net.n_out
    kernel = tf.convert_to_tensor(net.tc_dense.kernel, tf.float32)
    bias = tf.convert_to_tensor(net.tc_dense.bias, tf.float32)
    w_h, w_c = kernel[:n], kernel[n:]
    drive = tf.einsum("bti,io->bto", h, w_h) + bias  # (batch, F, n)
    if initial_condition is None:
        c0 = tf.zeros_like(drive[:, 0])
    else:
        c0 = tf.broadcast_to(tf.convert_to_tensor(initial_condition, tf.float32),
                             tf.shape(drive[:, 0]))
    ts = net.target_scale  # standardised targets: each step's output is read out, then fed back
    if ts is None:
        step = lambda c_prev, a_t: a_t + tf.matmul(c_prev, w_c)  # noqa: E731
    else:
        std, mean = tf.constant(ts.std, tf.float32), tf.constant(ts.mean, tf.float32)
        step = lambda c_prev, a_t: (a_t + tf.matmul(c_prev, w_c)) * std + mean  # noqa: E731
    out = tf.scan(step, tf.transpose(drive, [1, 0, 2]), initializer=c0)
    return tf.transpose(out, [1, 0, 2])
