"""ATVGnet AT-net: audio (MFCC windows) + example landmark PCA -> PCA landmark sequence.

Source: docs/atvgnet_davs.md §A4 (``[A] code/models.py AT_net``, ``code/ops.py conv2d``).

Per frame the audio encoder reads a 28 x 12 MFCC window (NHWC: (28, 12, 1)):

* conv2d(64) -> conv2d(128) -> MaxPool(3, strides (1, 2)) -> 26 x 5 x 128
* conv2d(256) -> conv2d(256) -> conv2d(512) -> MaxPool(3, strides 2) -> 12 x 2 x 512 = **12288**
* Flatten -> Dense 2048 + ReLU -> Dense 256 + ReLU

(``conv2d`` = 3 x 3 conv, stride 1, padding 1, no bias, BatchNorm(eps 1e-5, momentum 0.9) +
ReLU). The example PCA (6) goes through Dense 256 + ReLU -> Dense 512 + ReLU and is repeated at
every step; ``concat[example 512, audio 256]`` -> 3-layer LSTM(256) (zero initial state) ->
Dense 6 per step (no activation).

Differences (on purpose, same function):

* The audio encoder runs on all B x T windows at once, so BatchNorm's training statistics are
  over B x T windows (the original's per-step calls see B windows).
* Flatten order is (H, W, C) (NHWC); the original flattens (C, H, W): a PyTorch
  ``Linear(12288, 2048)`` weight needs its input axis permuted on import.
* The LSTMs use Keras' default init (glorot / orthogonal, forget bias 1); the original keeps
  PyTorch's default. Conv/Dense kernels are N(0, 0.02), biases 0, BN gamma N(1, 0.02), as
  ``weights_init``.
* The last Dense is float32 under a mixed policy (outputs are float32).
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_talkface.models.atvgnet_config import ATVGConfig, as_config
from tf_talkface.models.layers import (conv_bn_relu, normal_init, sequential,
                                       sync_batchnorm_default)


@keras.saving.register_keras_serializable(package="tf_talkface")
class ATNet(keras.Model):
    """AT-net (docs/atvgnet_davs.md §A4).

    Call: ``model({"example_pca": (B, 6), "mfcc": (B, T, 28, 12)})`` -> float32 (B, T, 6) PCA
    coefficients; T is any length (16 in training).

    Args (constructor):
        config: :class:`ATVGConfig`, its dict, or a preset name (``paper`` default).
    """

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", "atnet")
        # inputs stay float32 under a mixed policy (the layers cast for themselves): the
        # example image / landmarks enter outputs at full precision
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        cfg = as_config(config)
        self.config = cfg
        sync = sync_batchnorm_default() if cfg.sync_bn is None else cfg.sync_bn
        c = cfg.at_channels
        rows, cols = cfg.mfcc_rows, cfg.mfcc_cols
        self.audio_conv = sequential((rows, cols, 1), [
            *conv_bn_relu(c[0], sync_bn=sync), *conv_bn_relu(c[1], sync_bn=sync),
            keras.layers.MaxPooling2D(3, strides=(1, 2), padding="valid"),
            *conv_bn_relu(c[2], sync_bn=sync), *conv_bn_relu(c[3], sync_bn=sync),
            *conv_bn_relu(c[4], sync_bn=sync),
            keras.layers.MaxPooling2D(3, strides=2, padding="valid"),
            keras.layers.Flatten()], name="audio_conv")
        self.flatten_size = int(self.audio_conv.output_shape[-1])
        self.audio_fc = sequential((self.flatten_size,), [
            keras.layers.Dense(u, activation="relu", kernel_initializer=normal_init())
            for u in cfg.at_fc], name="audio_fc")
        self.example_fc = sequential((cfg.n_pca,), [
            keras.layers.Dense(u, activation="relu", kernel_initializer=normal_init())
            for u in cfg.at_example], name="example_fc")
        feat = cfg.at_example[-1] + cfg.at_fc[-1]
        self.lstms = [keras.layers.LSTM(cfg.lstm_units, return_sequences=True, name=f"lstm{i + 1}")
                      for i in range(cfg.lstm_layers)]
        shape = (None, None, feat)
        for lstm in self.lstms:
            lstm.build(shape)
            shape = (None, None, cfg.lstm_units)
        self.head = keras.layers.Dense(cfg.n_pca, kernel_initializer=normal_init(), dtype="float32",
                                       name="head")
        self.head.build(shape)
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """All weights exist after the constructor; ``input_shape`` is ignored."""
        self.built = True

    def encode_audio(self, mfcc: Any, training: bool | None = None) -> tf.Tensor:
        """(B, T, rows, cols) MFCC windows -> (B, T, at_fc[-1]) audio features."""
        cfg = self.config
        b, t = tf.shape(mfcc)[0], tf.shape(mfcc)[1]
        x = tf.reshape(tf.cast(mfcc, tf.float32), (-1, cfg.mfcc_rows, cfg.mfcc_cols, 1))
        x = self.audio_fc(self.audio_conv(x, training=training), training=training)
        return tf.reshape(x, (b, t, cfg.at_fc[-1]))

    def call(self, inputs: dict[str, Any], training: bool | None = None) -> tf.Tensor:
        audio = self.encode_audio(inputs["mfcc"], training=training)
        example = self.example_fc(tf.cast(inputs["example_pca"], tf.float32), training=training)
        example = tf.repeat(tf.cast(example, audio.dtype)[:, None], tf.shape(audio)[1], axis=1)
        x = tf.concat([example, audio], -1)
        for lstm in self.lstms:
            x = lstm(x, training=training)
        return self.head(x)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(config=self.config.to_dict())
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ATNet":
        return cls(**config)


def build_atnet(config: Any = None, **changes: Any) -> ATNet:
    """AT-net for ``config`` (an :class:`ATVGConfig`, its dict, a preset name; ``paper`` by
    default) with optional field ``changes`` (e.g. ``lstm_units=128``)."""
    cfg = as_config(config)
    return ATNet(cfg.replace(**changes) if changes else cfg)


def compile_atnet(model: ATNet, lr: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999,
                  **compile_kwargs: Any) -> ATNet:
    """Compile AT-net as the original trains it: MSE on the 6 PCA coefficients (mean over
    B x T x 6), Adam(2e-4, betas (0.5, 0.999)); batches are ``(x, y)`` with ``x`` the input
    dict and ``y`` float32 (B, T, 6). Call inside the strategy scope. Returns ``model``."""
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2), loss="mse",
                  **compile_kwargs)
    return model
