"""Small Keras layers shared by the models: :class:`TargetScale` and :class:`TemporalFilter`
(landmark models) and the
PyTorch-porting blocks of ATVGnet/DAVS (padding, transposed convs, BatchNorm settings, inits;
docs/atvgnet_davs.md §P)."""
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


@keras.saving.register_keras_serializable(package="tf_talkface", name="TemporalFilter")
class TemporalFilter(keras.layers.Layer):
    """A linear filter over frames: ``y_t = b + sum_{j=-K..K} x_{t+j} W_j`` (a ``Conv1D``,
    ``dim`` -> ``dim``), with the sequence continued beyond its ends by ``padding``: ``"zeros"``
    (``x = 0`` outside, i.e. the neutral face in PCA units; the first filters, session 8) or
    ``"edge"`` (the first and last frames repeated: a clip cut mid-speech, or a stream that
    starts mid-speech, keeps its mouth pose at the edges instead of being pulled to the neutral
    face).

    The landmark CNN's post-filter (issue 11; our change, not in the paper): the 2020 CNN sees
    a 280-ms window per frame, and a filter fitted by least squares on its training-split
    outputs (:mod:`tf_talkface.post_filter`) lets every frame use +-``K`` frames of the
    network's predictions around it. Streaming keeps the last ``2K`` inputs and emits a frame
    ``K`` frames later (:func:`valid_filter` is the streamers' step); offline and streamed
    outputs are equal. Created as the identity (kernel ``W_0 = I``, ``b = 0``).

    Args:
        frames: ``K`` >= 1 (frames at 25 fps each side). dim: features per frame.
        padding: ``"zeros"`` or ``"edge"`` (see above; the fit must use the same).

    Input/output: float32 (batch, T, dim); T >= 0 with ``"zeros"``, T >= 1 with ``"edge"``.

    Raises:
        ValueError: ``frames`` or ``dim`` < 1, or an unknown ``padding``.
    """

    PADDINGS = ("zeros", "edge")

    def __init__(self, frames: int, dim: int, padding: str = "zeros", **kwargs: Any) -> None:
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if int(frames) < 1 or int(dim) < 1:
            raise ValueError(f"TemporalFilter: frames and dim must be >= 1, got {frames}, {dim}")
        if padding not in self.PADDINGS:
            raise ValueError(f"TemporalFilter: padding must be one of {self.PADDINGS}, got {padding!r}")
        self.frames, self.dim, self.padding = int(frames), int(dim), padding
        eye = np.zeros((2 * self.frames + 1, self.dim, self.dim), np.float32)
        eye[self.frames] = np.eye(self.dim, dtype=np.float32)
        self.kernel = self.add_weight(name="kernel", shape=eye.shape,
                                      initializer=keras.initializers.Constant(eye))
        self.bias = self.add_weight(name="bias", shape=(self.dim,), initializer="zeros")

    def call(self, x: Any) -> Any:
        x = keras.ops.cast(x, "float32")
        if self.padding == "zeros":
            return keras.ops.conv(x, self.kernel, strides=1, padding="same") + self.bias
        k = self.frames
        x = keras.ops.concatenate([keras.ops.repeat(x[:, :1], k, axis=1), x,
                                   keras.ops.repeat(x[:, -1:], k, axis=1)], axis=1)
        return keras.ops.conv(x, self.kernel, strides=1, padding="valid") + self.bias

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """The layer on one sequence in numpy: (T, dim) -> (T, dim) float32
        (:func:`filter_sequence`)."""
        return filter_sequence(x, np.asarray(self.kernel), np.asarray(self.bias), self.padding)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(frames=self.frames, dim=self.dim, padding=self.padding)
        return config


def pad_frames(x: np.ndarray, frames: int, padding: str) -> np.ndarray:
    """(T, dim) -> (T + 2K, dim): the input of :func:`valid_filter` that equals
    :class:`TemporalFilter` with this ``padding`` (``"zeros"``; ``"edge"`` needs T >= 1), in the
    input's dtype.

    Raises:
        ValueError: an unknown ``padding``.
    """
    x = np.asarray(x)
    if padding == "edge":
        return np.concatenate([np.repeat(x[:1], frames, 0), x, np.repeat(x[-1:], frames, 0)])
    if padding != "zeros":
        raise ValueError(f"padding must be one of {TemporalFilter.PADDINGS}, got {padding!r}")
    return np.pad(x, ((frames, frames), (0, 0)))


def valid_filter(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """:class:`TemporalFilter` without padding, in numpy: (n, dim) inputs -> (n - 2K, dim)
    outputs (none when ``n <= 2K``). float32."""
    x = np.asarray(x, np.float32)
    taps = kernel.shape[0]
    n = len(x) - taps + 1
    if n <= 0:
        return np.zeros((0, kernel.shape[2]), np.float32)
    out = np.tile(np.asarray(bias, np.float32), (n, 1))
    for j in range(taps):
        out += x[j:j + n] @ kernel[j]
    return out.astype(np.float32)


def filter_sequence(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                    padding: str) -> np.ndarray:
    """:class:`TemporalFilter` weights on one whole sequence in numpy: (T, dim) -> (T, dim)
    float32, the sequence continued beyond its ends by ``padding`` (:func:`pad_frames`,
    :func:`valid_filter`; ``K = (len(kernel) - 1) / 2``).

    Raises:
        ValueError: an unknown ``padding``.
    """
    frames = (len(kernel) - 1) // 2
    return valid_filter(pad_frames(np.asarray(x, np.float32), frames, padding), kernel, bias)


def fold_pca_filter(mean: np.ndarray, components: np.ndarray, kernel: np.ndarray,
                    bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A filter fitted in a PCA of the output, as one :class:`TemporalFilter` over the whole
    output vector (the LSTM's post-filter, issue 11; our change).

    The filter maps the PCA coefficients ``c_t = (x_t - m) C^T`` of ±K frames to new
    coefficients ``f_t = b + sum_j c_{t+j} W_j`` and replaces the frame's own: ``y_t = x_t +
    (f_t - c_t) C`` (the part of ``x_t`` outside the PCA passes unchanged). That is linear in
    ``x``: tap ``j`` is ``C^T W_j C`` (plus ``I - C^T C`` at ``j = 0``) and the bias ``b C + m C^T
    C - m C^T (sum_j W_j) C``. Edge padding commutes with the affine map, so the folded filter
    with ``padding="edge"`` equals the factored one with edge padding of the coefficients.

    Args:
        mean: (d,) PCA mean ``m``. components: (k, d) orthonormal rows ``C``.
        kernel: (2K+1, k, k) ``W_j``, tap ``i`` = frame ``t + i - K``. bias: (k,) ``b``.

    Returns:
        ``(kernel (2K+1, d, d), bias (d,))`` float32, the weights of a ``TemporalFilter(K, d,
        "edge")``.

    Raises:
        ValueError: shapes that do not fit together.
    """
    m = np.asarray(mean, np.float64)
    c = np.asarray(components, np.float64)
    w = np.asarray(kernel, np.float64)
    k, d = c.shape
    if m.shape != (d,) or w.ndim != 3 or w.shape[1:] != (k, k) or np.shape(bias) != (k,):
        raise ValueError(f"fold_pca_filter: mean {m.shape}, components {c.shape}, kernel "
                         f"{w.shape} and bias {np.shape(bias)} do not fit together")
    full = np.einsum("ka,tkl,lb->tab", c, w, c)
    full[len(w) // 2] += np.eye(d) - c.T @ c
    b = np.asarray(bias, np.float64) @ c + m @ c.T @ c - m @ c.T @ w.sum(0) @ c
    return full.astype(np.float32), b.astype(np.float32)


# --- PyTorch -> Keras building blocks (ATVGnet, DAVS; docs/atvgnet_davs.md §P) -----------------

BN_EPSILON = 1e-5
"""PyTorch BatchNorm eps (Keras' default is 1e-3)."""
BN_MOMENTUM = 0.9
"""Keras momentum equal to PyTorch's default BatchNorm momentum 0.1 (moving = 0.9 old + 0.1 new)."""


def normal_init(stddev: float = 0.02) -> keras.initializers.Initializer:
    """A fresh N(0, stddev) initializer (the ATVGnet/DAVS ``weights_init``; one per layer: Keras
    returns the same values from a reused unseeded initializer)."""
    return keras.initializers.RandomNormal(0.0, stddev)


def torch_default_init() -> keras.initializers.Initializer:
    """PyTorch's default Conv/Linear weight init, ``kaiming_uniform(a=sqrt(5))`` =
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (biases stay zero here; PyTorch draws them too)."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def sync_batchnorm_default() -> bool:
    """Whether BatchNorm should synchronise its batch statistics over replicas: yes when called
    under a ``tf.distribute`` strategy with more than one replica (build the model in
    ``strategy.scope()``), so a step on N replicas equals one device on the global batch."""
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


def batch_norm(sync: bool = False, gamma_init: Any = None, name: str | None = None
               ) -> keras.layers.BatchNormalization:
    """BatchNorm with PyTorch's eps/momentum; ``gamma_init`` e.g. N(1, 0.02) (ATVGnet G)."""
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=bool(sync),
        gamma_initializer=gamma_init or "ones", name=name)


@keras.saving.register_keras_serializable(package="tf_talkface", name="ReflectionPad2D")
class ReflectionPad2D(keras.layers.Layer):
    """PyTorch ``nn.ReflectionPad2d(p)`` on NHWC: (B, H, W, C) -> (B, H + 2p, W + 2p, C)."""

    def __init__(self, padding: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x: Any) -> Any:
        p = self.padding
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape: Any) -> Any:
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(padding=self.padding)
        return config


def torch_conv_transpose(filters: int, use_bias: bool, kernel_init: Any = None,
                         name: str | None = None) -> list[keras.layers.Layer]:
    """PyTorch ``ConvTranspose2d(k3, s2, p1, output_padding=1)`` (H -> 2H) as Keras layers:
    ``Conv2DTranspose(k3, s2, "valid")`` (H -> 2H + 1) then crop the first row and column
    (PyTorch keeps indices 1 .. 2H of the full output). Weights: PyTorch (in, out, kh, kw) ->
    Keras (kh, kw, out, in), no flip."""
    return [keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", use_bias=use_bias,
                                         kernel_initializer=kernel_init or "glorot_uniform",
                                         name=name),
            keras.layers.Cropping2D(((1, 0), (1, 0)), name=None if name is None else name + "_crop")]


def torch_conv(filters: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
               kernel_init: Any = None, name: str | None = None,
               dtype: Any = None) -> list[keras.layers.Layer]:
    """PyTorch ``Conv2d(k, s, p)`` with symmetric zero padding: ``ZeroPadding2D(p)`` + a valid
    conv (TF "same" pads (0, 1) for stride 2 on even sizes; for stride 1 and p = (k-1)/2 it is
    symmetric, and then a single "same" conv is used). Weights: (out, in, kh, kw) -> (kh, kw,
    in, out)."""
    init = kernel_init or "glorot_uniform"
    if stride == 1 and 2 * padding == kernel - 1:
        return [keras.layers.Conv2D(filters, kernel, padding="same", use_bias=use_bias,
                                    kernel_initializer=init, name=name, dtype=dtype)]
    pad = [keras.layers.ZeroPadding2D(padding, dtype=dtype)] if padding else []
    return pad + [keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                                      use_bias=use_bias, kernel_initializer=init, name=name,
                                      dtype=dtype)]


def conv_bn_relu(filters: int, kernel: int = 3, stride: int = 1, padding: int = 1,
                 sync_bn: bool = False, init: bool = True, name: str | None = None
                 ) -> list[keras.layers.Layer]:
    """ATVGnet's ``ops.conv2d``: Conv2d without bias (PyTorch padding) + BatchNorm + ReLU; with
    ``init`` the G/AT-net init (conv N(0, 0.02), BN gamma N(1, 0.02)), else PyTorch's default
    (discriminator)."""
    kinit = normal_init() if init else torch_default_init()
    gamma = keras.initializers.RandomNormal(1.0, 0.02) if init else None
    return torch_conv(filters, kernel, stride, padding, use_bias=False, kernel_init=kinit,
                      name=name) + [batch_norm(sync_bn, gamma), keras.layers.ReLU()]


def sequential(input_shape: tuple, layers: list[keras.layers.Layer], name: str) -> keras.Sequential:
    """A built ``keras.Sequential`` (weights exist at once) of ``layers`` on ``input_shape``
    (without the batch axis)."""
    return keras.Sequential([keras.Input(input_shape)] + list(layers), name=name)
