"""ATVGnet VG-net: example image + landmark sequence -> frames, attention and colour maps.

Source: docs/atvgnet_davs.md §A5 (``[A] code/models.py VG_net``, ``ResnetBlock``,
``code/convolutional_rnn``). NHWC; sizes for the ``paper`` preset (128 px, ngf 64), other
presets scale them (``s = image_size // 16`` is the bottleneck side).

* Image encoder 1 (skip path), once per clip: ReflectionPad 3 + conv2d(ngf, 7, valid) ->
  conv2d(ngf, 3, s2, p1) -> conv2d(2ngf, 3, s2, p1) -> **i'** (H/4, W/4, 2ngf).
* Image encoder 2: conv2d(4ngf, s2) -> conv2d(8ngf, s2) -> **i''** (s, s, 8ngf).
* Landmark embedding (shared by the example and every target landmark): Dense(s*s) + ReLU ->
  reshape (s, s, 1) -> conv2d(4ngf) = f1 -> conv2d(8ngf) = f2.
* Landmark attention per frame: concat[f1(target), f1(example)] -> ConvT(4ngf) + BN + ReLU ->
  ConvT(2ngf) + BN + ReLU -> Conv(1, 3, p1) + sigmoid = **att_lmk** (H/4, W/4, 1).
* Bottleneck per frame: conv2d(2ngf) on concat[i'', f2(target) - f2(example)] (s, s, 2ngf).
* :class:`ConvGRU` (2ngf -> gru_channels, 3 x 3, dilation 2): see its docstring for the two
  modes.
* Decoder per frame: n_res_blocks x :class:`ResnetBlock` -> ConvT(4ngf) -> ConvT(2ngf) = v'1
  (H/4); fusion v = i' (1 - att_lmk) + v'1 att_lmk; ConvT(ngf) -> ConvT(ngf // 2) (H);
  colour ("motion") map m = tanh(Conv(3, 7, p3)); attention alpha = sigmoid(Conv(1, 7, p3));
  **frame = alpha m + (1 - alpha) example_image**.

``conv2d`` = conv without bias + BatchNorm(eps 1e-5, momentum 0.9) + ReLU with symmetric
PyTorch padding (explicit ``ZeroPadding2D`` for stride 2). ``ConvT`` = PyTorch
``ConvTranspose2d(k3, s2, p1, output_padding 1)`` = Keras ``Conv2DTranspose`` valid + crop of the
first row and column (H -> 2H); the attention branch's have a bias, the decoder's do not.

Differences (on purpose):

* All per-frame layers run on the B x T frames at once: BatchNorm's training statistics are over
  B x T frames (the original's per-step calls see B).
* ConvGRU mode ``time`` (default) recurs over the frames; ``original`` reproduces the released
  code's effective computation at batch 1 (see :class:`ConvGRU`).
* The ConvGRU's kernels get N(0, 0.02), biases 0 (the original's init of its GRU is unclear);
  other kernels N(0, 0.02), biases 0, BN gamma N(1, 0.02) as its ``weights_init``.
* The last convs (colour, attention, landmark attention) and the composition are float32 under
  a mixed policy: every output is float32.
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_talkface.models.atvgnet_config import GRU_MODES, as_config
from tf_talkface.models.layers import (ReflectionPad2D, batch_norm, conv_bn_relu, normal_init,
                                       sequential, sync_batchnorm_default, torch_conv,
                                       torch_conv_transpose)

OUTPUT_KEYS = ("frames", "attention", "color", "landmark_attention")
"""Keys of :class:`VGNet`'s output dict."""


@keras.saving.register_keras_serializable(package="tf_talkface", name="ConvGRU")
class ConvGRU(keras.layers.Layer):
    """Convolutional GRU over a frame sequence (``Conv2dGRU`` of ``[A] convolutional_rnn``).

    Gates in PyTorch's order (r, z, n); both convolutions are dilated (``dilation``) with "same"
    zero padding (stride 1: symmetric, 2 for k3 d2) and have biases::

        r = sigmoid(W_ir * x + b_ir + W_hr * h + b_hr)
        z = sigmoid(W_iz * x + b_iz + W_hz * h + b_hz)
        n = tanh(W_in * x + b_in + r (W_hn * h + b_hn))
        h' = (1 - z) n + z h

    Modes:

    * ``"time"``: the recurrence runs over the T frames of each clip from h = 0 (what the paper
      describes). The input convolution runs on all frames at once; only ``W_h * h`` is
      sequential (``tf.scan``).
    * ``"original"``: every frame is one step from h = 0, i.e. ``h = (1 - z) n`` with the
      hidden biases still applied (``W_h * 0 = 0``). The released code passes (B, T, ...) to a
      GRU built with ``batch_first=False``, so it recurs over the *batch* axis: at batch 1 (the
      demo) this is exactly one zero-state step per frame; in training (B = 10) state leaked
      between shuffled clips, which is not reproduced. Use it to run the released weights.

    The two modes agree for T = 1.

    Weights (PyTorch -> Keras): ``weight_ih_l0`` (3F, C, 3, 3) -> ``kernel_ih`` (3, 3, C, 3F);
    ``weight_hh_l0`` (3F, F, 3, 3) -> ``kernel_hh`` (3, 3, F, 3F); ``bias_ih_l0``/``bias_hh_l0``
    (3F,) unchanged; the 3F axis stays in (r, z, n) order.

    Call: ``layer(x, initial_state=None, return_state=False)`` with x (B, T, h, w, C) -> (B, T,
    h, w, F) (and the last state (B, h, w, F) with ``return_state``; ``initial_state`` continues
    a clip in ``time`` mode, e.g. chunked generation).
    """

    def __init__(self, filters: int, kernel_size: int = 3, dilation: int = 2, mode: str = "time",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in GRU_MODES:
            raise ValueError(f"ConvGRU mode {mode!r}: one of {GRU_MODES}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.mode = mode

    def build(self, input_shape: Any) -> None:
        c = int(input_shape[-1])
        k, f = self.kernel_size, self.filters
        self.kernel_ih = self.add_weight(shape=(k, k, c, 3 * f), initializer=normal_init(),
                                         name="kernel_ih")
        self.kernel_hh = self.add_weight(shape=(k, k, f, 3 * f), initializer=normal_init(),
                                         name="kernel_hh")
        self.bias_ih = self.add_weight(shape=(3 * f,), initializer="zeros", name="bias_ih")
        self.bias_hh = self.add_weight(shape=(3 * f,), initializer="zeros", name="bias_hh")
        self.built = True

    def _conv(self, x: tf.Tensor, kernel: Any) -> tf.Tensor:
        # tf.nn.convolution, not tf.nn.conv2d: on a CPU without oneDNN's kernel the dilated
        # Conv2DBackpropFilter is not implemented ("Current CPU implementations do not yet
        # support dilation rates larger than 1"); tf.nn.convolution does the dilation by
        # space-to-batch, the same numbers, and trains on any device.
        return tf.nn.convolution(x, tf.cast(kernel, x.dtype), strides=1, padding="SAME",
                                 dilations=self.dilation)

    def call(self, x: Any, initial_state: Any = None, return_state: bool = False) -> Any:
        dt = self.compute_dtype
        x = tf.cast(x, dt)
        shape = tf.shape(x)
        b, t, h, w = shape[0], shape[1], shape[2], shape[3]
        f = self.filters
        gx = self._conv(tf.reshape(x, (b * t, h, w, x.shape[-1])), self.kernel_ih)
        gx = tf.reshape(gx + tf.cast(self.bias_ih, dt), (b, t, h, w, 3 * f))
        bias_hh = tf.cast(self.bias_hh, dt)
        if self.mode == "original":
            if initial_state is not None:
                raise ValueError("ConvGRU mode 'original' has no state to continue")
            xr, xz, xn = tf.split(gx, 3, axis=-1)
            hr, hz, hn = tf.split(bias_hh, 3)
            r = tf.sigmoid(xr + hr)
            z = tf.sigmoid(xz + hz)
            n = tf.tanh(xn + r * hn)
            seq = (1 - z) * n
            return (seq, seq[:, -1]) if return_state else seq

        def step(prev: tf.Tensor, gxt: tf.Tensor) -> tf.Tensor:
            gh = self._conv(prev, self.kernel_hh) + bias_hh
            xr, xz, xn = tf.split(gxt, 3, axis=-1)
            hr, hz, hn = tf.split(gh, 3, axis=-1)
            r = tf.sigmoid(xr + hr)
            z = tf.sigmoid(xz + hz)
            n = tf.tanh(xn + r * hn)
            return (1 - z) * n + z * prev

        h0 = (tf.zeros((b, h, w, f), dt) if initial_state is None
              else tf.cast(initial_state, dt))
        seq = tf.scan(step, tf.transpose(gx, (1, 0, 2, 3, 4)), initializer=h0)
        seq = tf.transpose(seq, (1, 0, 2, 3, 4))
        if return_state:
            last = tf.cond(t > 0, lambda: seq[:, -1], lambda: h0)
            return seq, last
        return seq

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, dilation=self.dilation,
                      mode=self.mode)
        return config


@keras.saving.register_keras_serializable(package="tf_talkface", name="ResnetBlock")
class ResnetBlock(keras.layers.Layer):
    """ATVGnet ``ResnetBlock(dim)``: x + [conv3x3 (no bias, zero pad 1), BN, ReLU, Dropout,
    conv3x3, BN](x); channels unchanged. BN eps 1e-5, momentum 0.9; kernels N(0, 0.02)."""

    def __init__(self, dropout: float = 0.5, sync_bn: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropout = float(dropout)
        self.sync_bn = bool(sync_bn)

    def build(self, input_shape: Any) -> None:
        c = int(input_shape[-1])
        gamma = keras.initializers.RandomNormal(1.0, 0.02)
        self.conv1 = keras.layers.Conv2D(c, 3, padding="same", use_bias=False,
                                         kernel_initializer=normal_init(), name="conv1")
        self.bn1 = batch_norm(self.sync_bn, gamma, name="bn1")
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.conv2 = keras.layers.Conv2D(c, 3, padding="same", use_bias=False,
                                         kernel_initializer=normal_init(), name="conv2")
        self.bn2 = batch_norm(self.sync_bn, keras.initializers.RandomNormal(1.0, 0.02), name="bn2")
        shape = tuple(input_shape)
        for layer in (self.conv1, self.bn1, self.drop, self.conv2, self.bn2):
            layer.build(shape)
        self.built = True

    def call(self, x: Any, training: bool | None = None) -> Any:
        y = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        y = self.drop(y, training=training)
        return x + self.bn2(self.conv2(y), training=training)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(dropout=self.dropout, sync_bn=self.sync_bn)
        return config


def _convt_bn_relu(filters: int, use_bias: bool, sync: bool) -> list[keras.layers.Layer]:
    return torch_conv_transpose(filters, use_bias, normal_init()) + [
        batch_norm(sync, keras.initializers.RandomNormal(1.0, 0.02)), keras.layers.ReLU()]


@keras.saving.register_keras_serializable(package="tf_talkface")
class VGNet(keras.Model):
    """VG-net (docs/atvgnet_davs.md §A5; module docstring for the layers).

    Call: ``model(inputs, training=None, return_state=False)`` with ``inputs`` a dict:

    * ``example_image``: (B, H, W, 3) in [-1, 1];
    * ``example_landmarks``: (B, 136), normalised x5 units, ``x0, y0, x1, ...``;
    * ``landmarks``: (B, T, 136), any T;
    * optional ``gru_state``: (B, s, s, gru_channels), the ConvGRU state to continue from
      (``time`` mode; chunked generation).

    Returns a dict of float32 tensors (:data:`OUTPUT_KEYS`): ``frames`` (B, T, H, W, 3) in
    [-1, 1], ``attention`` alpha (B, T, H, W, 1), ``color`` m (B, T, H, W, 3),
    ``landmark_attention`` (B, T, H/4, W/4, 1); with ``return_state`` also ``gru_state``.
    ``frames == attention * color + (1 - attention) * example_image``.

    Args (constructor):
        config: :class:`~tf_talkface.models.atvgnet_config.ATVGConfig`, its dict, or a preset
            name (``paper`` default).
    """

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", "vgnet")
        # inputs stay float32 under a mixed policy (the layers cast for themselves): the
        # example image / landmarks enter outputs at full precision
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        cfg = as_config(config)
        self.config = cfg
        sync = sync_batchnorm_default() if cfg.sync_bn is None else cfg.sync_bn
        size, ngf, s = cfg.image_size, cfg.ngf, cfg.bottleneck_size
        q = size // 4

        def cbr(filters: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> list:
            return conv_bn_relu(filters, kernel, stride, padding, sync_bn=sync)

        self.image_encoder1 = sequential((size, size, 3), [
            ReflectionPad2D(3), *cbr(ngf, 7, 1, 0), *cbr(ngf, 3, 2, 1), *cbr(2 * ngf, 3, 2, 1)],
            name="image_encoder1")
        self.image_encoder2 = sequential((q, q, 2 * ngf), [
            *cbr(4 * ngf, 3, 2, 1), *cbr(8 * ngf, 3, 2, 1)], name="image_encoder2")
        self.landmark_fc = sequential((cfg.n_landmarks,), [
            keras.layers.Dense(cfg.landmark_embed, activation="relu",
                               kernel_initializer=normal_init()),
            keras.layers.Reshape((s, s, 1))], name="landmark_fc")
        self.landmark_conv1 = sequential((s, s, 1), cbr(4 * ngf), name="landmark_conv1")
        self.landmark_conv2 = sequential((s, s, 4 * ngf), cbr(8 * ngf), name="landmark_conv2")
        self.landmark_attention = sequential((s, s, 8 * ngf), [
            *_convt_bn_relu(4 * ngf, True, sync), *_convt_bn_relu(2 * ngf, True, sync),
            keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=normal_init(),
                                dtype="float32"),
            keras.layers.Activation("sigmoid", dtype="float32")], name="landmark_attention")
        self.bottleneck = sequential((s, s, 16 * ngf), cbr(2 * ngf), name="bottleneck")
        self.gru = ConvGRU(cfg.gru_channels, cfg.gru_kernel, cfg.gru_dilation, cfg.gru_mode,
                           name="conv_gru")
        self.gru.build((None, None, s, s, 2 * ngf))
        self.res_blocks = sequential((s, s, cfg.gru_channels), [
            ResnetBlock(cfg.dropout, sync, name=f"res{i + 1}") for i in range(cfg.n_res_blocks)],
            name="res_blocks")
        self.decoder = sequential((s, s, cfg.gru_channels), [
            *_convt_bn_relu(4 * ngf, False, sync), *_convt_bn_relu(2 * ngf, False, sync)],
            name="decoder")
        self.base = sequential((q, q, 2 * ngf), [
            *_convt_bn_relu(ngf, False, sync), *_convt_bn_relu(ngf // 2, False, sync)],
            name="base")
        self.color_head = sequential((size, size, ngf // 2), [
            *torch_conv(3, 7, 1, 3, kernel_init=normal_init(), dtype="float32"),
            keras.layers.Activation("tanh", dtype="float32")], name="color_head")
        self.attention_head = sequential((size, size, ngf // 2), [
            *torch_conv(1, 7, 1, 3, kernel_init=normal_init(), dtype="float32"),
            keras.layers.Activation("sigmoid", dtype="float32")], name="attention_head")
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """All weights exist after the constructor; ``input_shape`` is ignored."""
        self.built = True

    def encode_example(self, example_image: Any, example_landmarks: Any,
                       training: bool | None = None) -> dict[str, tf.Tensor]:
        """Per-clip features: ``skip`` i' (B, H/4, W/4, 2ngf), ``image`` i'' (B, s, s, 8ngf),
        ``f1`` and ``f2`` of the example landmarks (B, s, s, 4ngf / 8ngf)."""
        skip = self.image_encoder1(tf.cast(example_image, tf.float32), training=training)
        image = self.image_encoder2(skip, training=training)
        f1 = self.landmark_conv1(self.landmark_fc(tf.cast(example_landmarks, tf.float32),
                                                  training=training), training=training)
        f2 = self.landmark_conv2(f1, training=training)
        return {"skip": skip, "image": image, "f1": f1, "f2": f2}

    def call(self, inputs: dict[str, Any], training: bool | None = None,
             return_state: bool = False) -> dict[str, tf.Tensor]:
        cfg = self.config
        example = tf.cast(inputs["example_image"], tf.float32)
        lmk = tf.cast(inputs["landmarks"], tf.float32)
        b, t = tf.shape(lmk)[0], tf.shape(lmk)[1]
        s, size, q = cfg.bottleneck_size, cfg.image_size, cfg.image_size // 4
        ex = self.encode_example(example, inputs["example_landmarks"], training=training)

        def frames_of(x: tf.Tensor) -> tf.Tensor:  # (B, ...) -> (B*T, ...), repeated per frame
            return tf.reshape(tf.repeat(x[:, None], t, axis=1), tf.concat([[-1], tf.shape(x)[1:]], 0))

        f1 = self.landmark_conv1(self.landmark_fc(tf.reshape(lmk, (-1, cfg.n_landmarks)),
                                                  training=training), training=training)
        f2 = self.landmark_conv2(f1, training=training)
        att = self.landmark_attention(tf.concat([f1, frames_of(ex["f1"])], -1), training=training)
        x = self.bottleneck(tf.concat([frames_of(ex["image"]), f2 - frames_of(ex["f2"])], -1),
                            training=training)
        x = tf.reshape(x, (b, t, s, s, 2 * cfg.ngf))
        gru = self.gru(x, initial_state=inputs.get("gru_state"), return_state=return_state)
        if return_state:
            gru, state = gru
        y = self.res_blocks(tf.reshape(gru, (-1, s, s, cfg.gru_channels)), training=training)
        v1 = self.decoder(y, training=training)
        att_c = tf.cast(att, v1.dtype)
        v = frames_of(tf.cast(ex["skip"], v1.dtype)) * (1 - att_c) + v1 * att_c
        v = self.base(v, training=training)
        color = self.color_head(v, training=training)
        alpha = self.attention_head(v, training=training)
        frames = alpha * color + (1 - alpha) * frames_of(example)

        def seq(z: tf.Tensor, side: int, c: int) -> tf.Tensor:
            return tf.reshape(tf.cast(z, tf.float32), (b, t, side, side, c))

        out = {"frames": seq(frames, size, 3), "attention": seq(alpha, size, 1),
               "color": seq(color, size, 3), "landmark_attention": seq(att, q, 1)}
        if return_state:
            out["gru_state"] = state
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(config=self.config.to_dict())
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "VGNet":
        return cls(**config)


def build_vgnet(config: Any = None, **changes: Any) -> VGNet:
    """VG-net for ``config`` (an :class:`ATVGConfig`, its dict, a preset name; ``paper`` by
    default) with optional field ``changes`` (e.g. ``gru_mode="original"``)."""
    cfg = as_config(config)
    return VGNet(cfg.replace(**changes) if changes else cfg)
