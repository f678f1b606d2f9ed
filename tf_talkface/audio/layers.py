"""In-graph Keras layers of the 2018 audio front-end, matching :mod:`tf_talkface.audio.features`.

The numpy reference and these layers share their constants (:func:`features.mel_basis`,
:class:`~tf_talkface.config.LogMelConfig`); see :mod:`tf_talkface.audio.features` for the exact
computation and its source. TensorFlow ops only (no tensorflow-io), so the layers can live inside
SavedModels served by TF Serving.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_talkface.audio.features import mel_basis, min_samples
from tf_talkface.config import LogMelConfig

__all__ = ["LogMelDeltas", "ContextStack", "stack_context"]


@keras.saving.register_keras_serializable(package="tf_talkface")
class LogMelDeltas(keras.layers.Layer):
    """In-graph :func:`logmel_delta_features`: waveform batch -> 2018 delta features.

    Input: float waveform (batch, samples) at ``sample_rate`` Hz (batch and samples may be
    symbolic; every row of a batch has the same length). Output: float32
    (batch, frames, 2 * n_mels), frames = ``1 + (samples + 2*(n_fft//2) - n_fft) // hop``
    (= 1 + samples // 1764 with the defaults; one frame per 40 ms at 25 fps).

    Ops: ``tf.pad(mode="REFLECT")`` by ``n_fft // 2`` both sides, ``tf.signal.frame``,
    periodic Hann window (``scipy.signal.get_window("hann", n_fft, fftbins=True)``, as librosa),
    ``tf.signal.rfft``, ``|.| / (1 + n_fft/2)``, square, matmul with librosa's mel matrix
    (:func:`mel_basis`, a constant computed at construction — not a weight), ``log(floor + .)``,
    deltas with zero rows prepended. Always computes in float32 whatever the dtype policy.

    Precision vs the numpy reference: the reference FFT runs in float64 (numpy) and TF's in
    float32, so bands with very little energy relative to the frame (log-mel far below the frame
    maximum) differ most; see ``tests/test_audio.py`` for the measured difference on real speech.

    Raises:
        ValueError: at build time when the static number of samples is below
            ``n_fft // 2 + 1``; ``tf.errors.InvalidArgumentError`` at run time for shorter
            dynamic inputs.
    """

    def __init__(self, sample_rate: int = 44100, win_s: float = 0.04, hop_s: float = 0.04,
                 n_mels: int = 64, log_floor: float = 1e-16, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.cfg = LogMelConfig(sample_rate=int(sample_rate), win_s=float(win_s), hop_s=float(hop_s),
                                n_mels=int(n_mels), log_floor=float(log_floor))
        if self.cfg.n_fft < 2 or self.cfg.hop_length < 1:
            raise ValueError(f"window/hop too short at {sample_rate} Hz: n_fft={self.cfg.n_fft}, "
                             f"hop={self.cfg.hop_length}")
        import scipy.signal

        self._window = scipy.signal.get_window("hann", self.cfg.n_fft, fftbins=True).astype(np.float32)
        self._mel_t = np.ascontiguousarray(mel_basis(self.cfg).T)  # (bins, n_mels)

    @classmethod
    def from_logmel_config(cls, cfg: LogMelConfig, **kwargs: Any) -> "LogMelDeltas":
        """Build the layer from a :class:`~tf_talkface.config.LogMelConfig`."""
        return cls(sample_rate=cfg.sample_rate, win_s=cfg.win_s, hop_s=cfg.hop_s,
                   n_mels=cfg.n_mels, log_floor=cfg.log_floor, **kwargs)

    def _n_frames(self, n_samples: int | None) -> int | None:
        if n_samples is None:
            return None
        pad = self.cfg.n_fft // 2
        return 1 + (n_samples + 2 * pad - self.cfg.n_fft) // self.cfg.hop_length

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 2:
            raise ValueError(f"LogMelDeltas expects (batch, samples) input, got shape {tuple(input_shape)}")
        n = input_shape[-1]
        if n is not None and n < min_samples(self.cfg):
            raise ValueError(f"waveform too short: {n} samples; LogMelDeltas needs at least "
                             f"{min_samples(self.cfg)} samples for reflect padding")
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], self._n_frames(input_shape[-1]), 2 * self.cfg.n_mels)

    def call(self, inputs: Any) -> tf.Tensor:
        n_fft, hop, pad = self.cfg.n_fft, self.cfg.hop_length, self.cfg.n_fft // 2
        x = tf.cast(inputs, tf.float32)
        n = tf.shape(x)[-1]
        with tf.control_dependencies([tf.debugging.assert_greater(
                n, pad, message=f"LogMelDeltas: waveform too short; need at least {pad + 1} samples")]):
            x = tf.pad(x, [[0, 0], [pad, pad]], mode="REFLECT")
        frames = tf.signal.frame(x, frame_length=n_fft, frame_step=hop, pad_end=False, axis=-1)
        logmel = self.logmel_frames(frames)  # (batch, frames, n_mels)
        t = tf.shape(logmel)[1]
        d1_raw = logmel[:, 1:] - logmel[:, :-1]
        d2_raw = d1_raw[:, 1:] - d1_raw[:, :-1]
        d1 = tf.pad(d1_raw, [[0, 0], [1, 0], [0, 0]])[:, :t]
        d2 = tf.pad(d2_raw, [[0, 0], [2, 0], [0, 0]])[:, :t]
        out = tf.concat([d1, d2], axis=-1)
        static_n = inputs.shape[-1] if hasattr(inputs, "shape") else None
        out.set_shape([None, self._n_frames(static_n), 2 * self.cfg.n_mels])
        return out

    def logmel_frames(self, frames: Any) -> tf.Tensor:
        """Log-mel of complete STFT frames: float32 (..., n_fft) raw samples -> (..., n_mels).

        The per-frame part of :meth:`call` (Hann window, rfft, magnitude scaling, mel, log),
        used alone by the streaming front-ends, which frame the audio themselves.
        """
        n_fft = self.cfg.n_fft
        frames = tf.cast(frames, tf.float32) * tf.constant(self._window)
        mag = tf.abs(tf.signal.rfft(frames, fft_length=[n_fft])) / (1.0 + n_fft / 2.0)
        return tf.math.log(self.cfg.log_floor + tf.matmul(tf.square(mag), tf.constant(self._mel_t)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(sample_rate=self.cfg.sample_rate, win_s=self.cfg.win_s, hop_s=self.cfg.hop_s,
                      n_mels=self.cfg.n_mels, log_floor=self.cfg.log_floor)
        return config


def stack_context(x: Any, context: int) -> tf.Tensor:
    """TF op of :func:`~tf_talkface.audio.features.add_context` on the frame axis (-2).

    ``x``: (..., frames, dim) float -> (..., frames, dim * (context + 1)): frame ``t`` becomes
    ``concat(x_t, x_{t-1}, ..., x_{t-context})``, the first frame repeated where ``t - k < 0``.
    Works on one clip (frames, dim) inside tf.data maps and on batches inside models.
    """
    x = tf.convert_to_tensor(x)
    if context == 0:
        return x
    t = tf.shape(x)[-2]
    first = x[..., :1, :]
    padded = tf.concat([tf.repeat(first, context, axis=-2), x], axis=-2)
    return tf.concat([padded[..., context - k: context - k + t, :] for k in range(context + 1)],
                     axis=-1)


@keras.saving.register_keras_serializable(package="tf_talkface")
class ContextStack(keras.layers.Layer):
    """In-graph :func:`add_context`: (batch, frames, dim) -> (batch, frames, dim * (context + 1)).

    Frame ``t`` becomes ``concat(x_t, x_{t-1}, ..., x_{t-context})`` with the first frame of each
    sequence repeated where ``t - k < 0`` (original ``addContext`` order). Batch and frames may
    be symbolic; ``dim`` must be known. ``context=0`` is the identity.
    """

    def __init__(self, context: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(context) != context or context < 0:
            raise ValueError(f"context must be a non-negative integer, got {context!r}")
        self.context = int(context)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        dim = input_shape[-1]
        return (input_shape[0], input_shape[1], None if dim is None else dim * (self.context + 1))

    def call(self, inputs: Any) -> tf.Tensor:
        if self.context == 0:
            return inputs
        out = stack_context(inputs, self.context)
        out.set_shape(self.compute_output_shape(tuple(inputs.shape)))
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(context=self.context)
        return config
