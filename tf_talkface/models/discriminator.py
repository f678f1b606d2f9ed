"""ATVGnet's regression-based discriminator (real/fake per step + landmark regression).

Source: docs/atvgnet_davs.md §A6 (``[A] code/models.py GL_Discriminator``). NHWC; sizes for the
``paper`` preset (128 px, ndf 64):

* Per frame: Conv(ndf, 3, s2, p1, bias) + ReLU (no BN) -> conv2d(2ndf, s2) -> conv2d(4ndf, s2)
  -> conv2d(8ndf, s2) -> (s, s, 8ndf) = 8 x 8 x 512 -> Flatten (32768) -> Dense(d_fc) + ReLU.
* Example landmark: Dense(256) + ReLU -> Dense(d_fc) + ReLU, repeated at every step.
* ``concat[frame, example]`` -> 3-layer LSTM(256) -> per step: a real/fake logit (Dense 1) and a
  landmark regression ``tanh(Dense 136) + example landmark``.
* Decision: the mean of the T per-step logits (``logit``); sigmoid(logit) is the original's
  output.

Differences (on purpose):

* The original averages the logits with ``AvgPool1d(16)``, which fixes T = 16; here the mean
  over T (the same for T = 16) accepts any T.
* Outputs are logits; the losses use BCE on logits (= BCE on the sigmoid, without PyTorch's
  clamp of log at -100).
* BatchNorm statistics over B x T frames (the original's per-frame calls see B); flatten order
  (H, W, C) (a PyTorch ``Linear(32768, 512)`` weight needs its input axis permuted on import).
* Init: PyTorch's default kernel init (the original does not re-initialise D), biases 0; LSTMs
  Keras' default.
* The last layers are float32 under a mixed policy.
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_talkface.models.atvgnet_config import as_config
from tf_talkface.models.layers import (conv_bn_relu, sequential, sync_batchnorm_default,
                                       torch_conv, torch_default_init)


@keras.saving.register_keras_serializable(package="tf_talkface")
class RegressionDiscriminator(keras.Model):
    """ATVGnet ``GL_Discriminator`` (module docstring).

    Call: ``model({"frames": (B, T, H, W, 3) in [-1, 1], "example_landmarks": (B, 136)})`` ->
    dict of float32: ``logit`` (B,) (mean of the per-step logits), ``step_logits`` (B, T),
    ``landmarks`` (B, T, 136) regressed landmarks (x5 units).

    Args (constructor):
        config: :class:`~tf_talkface.models.atvgnet_config.ATVGConfig`, its dict, or a preset
            name (``paper`` default).
    """

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", "discriminator")
        # inputs stay float32 under a mixed policy (the layers cast for themselves): the
        # example image / landmarks enter outputs at full precision
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        cfg = as_config(config)
        self.config = cfg
        sync = sync_batchnorm_default() if cfg.sync_bn is None else cfg.sync_bn
        size, ndf = cfg.image_size, cfg.ndf

        def cbr(filters: int) -> list:
            return conv_bn_relu(filters, 3, 2, 1, sync_bn=sync, init=False)

        self.frame_encoder = sequential((size, size, 3), [
            *torch_conv(ndf, 3, 2, 1, use_bias=True, kernel_init=torch_default_init()),
            keras.layers.ReLU(), *cbr(2 * ndf), *cbr(4 * ndf), *cbr(8 * ndf),
            keras.layers.Flatten(),
            keras.layers.Dense(cfg.d_fc, activation="relu", kernel_initializer=torch_default_init())],
            name="frame_encoder")
        self.example_fc = sequential((cfg.n_landmarks,), [
            keras.layers.Dense(256, activation="relu", kernel_initializer=torch_default_init()),
            keras.layers.Dense(cfg.d_fc, activation="relu", kernel_initializer=torch_default_init())],
            name="example_fc")
        self.lstms = [keras.layers.LSTM(cfg.d_lstm_units, return_sequences=True, name=f"lstm{i + 1}")
                      for i in range(cfg.d_lstm_layers)]
        shape = (None, None, 2 * cfg.d_fc)
        for lstm in self.lstms:
            lstm.build(shape)
            shape = (None, None, cfg.d_lstm_units)
        self.decision = keras.layers.Dense(1, kernel_initializer=torch_default_init(),
                                           dtype="float32", name="decision")
        self.landmark_head = keras.layers.Dense(cfg.n_landmarks, activation="tanh",
                                                kernel_initializer=torch_default_init(),
                                                dtype="float32", name="landmark_head")
        self.decision.build(shape)
        self.landmark_head.build(shape)
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """All weights exist after the constructor; ``input_shape`` is ignored."""
        self.built = True

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> dict[str, tf.Tensor]:
        cfg = self.config
        frames = tf.cast(inputs["frames"], tf.float32)
        example = tf.cast(inputs["example_landmarks"], tf.float32)
        b, t = tf.shape(frames)[0], tf.shape(frames)[1]
        size = cfg.image_size
        f = self.frame_encoder(tf.reshape(frames, (-1, size, size, 3)), training=training)
        f = tf.reshape(f, (b, t, cfg.d_fc))
        e = self.example_fc(example, training=training)
        x = tf.concat([f, tf.repeat(tf.cast(e, f.dtype)[:, None], t, axis=1)], -1)
        for lstm in self.lstms:
            x = lstm(x, training=training)
        step_logits = self.decision(x)[..., 0]
        landmarks = self.landmark_head(x) + example[:, None]
        return {"logit": tf.reduce_mean(step_logits, 1), "step_logits": step_logits,
                "landmarks": landmarks}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(config=self.config.to_dict())
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RegressionDiscriminator":
        return cls(**config)


def build_discriminator(config: Any = None, **changes: Any) -> RegressionDiscriminator:
    """The regression discriminator for ``config`` (an :class:`ATVGConfig`, its dict, a preset
    name; ``paper`` by default) with optional field ``changes``."""
    cfg = as_config(config)
    return RegressionDiscriminator(cfg.replace(**changes) if changes else cfg)
