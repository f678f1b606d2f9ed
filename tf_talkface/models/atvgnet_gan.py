"""ATVGnet VG-net training: the losses of the original and :class:`ATVGnetGAN`.

Source: docs/atvgnet_davs.md §A7 (``[A] code/vgnet.py``).

Batch: ``(x, y)`` with ``x`` = the :class:`~tf_talkface.models.vgnet.VGNet` input dict
(``example_image`` (B, H, W, 3), ``example_landmarks`` (B, 136), ``landmarks`` (B, T, 136)) and
``y`` = target frames (B, T, H, W, 3) in [-1, 1] (or a dict with ``frames``).

Losses (w = 1 everywhere and ``mouth_weight`` = 100 at the y-coordinates of mouth points 48-67,
indices 97, 99, ..., 135; the MSEs compare w * pred with w * target, so the effective weight is
w**2):

* D: BCE(D(v), 1) + BCE(D(v_hat), 0) + MSE(w l_hat(v), w l) + MSE(w l_hat(v_hat), w l), with
  v_hat detached (the discriminator also regresses landmarks from fakes, as the original).
* G: 10 mean(|v_hat - v| (stop_gradient(alpha) + 0.5)) (the "dynamic pixel-wise loss") +
  BCE(D(v_hat), 1) + MSE(w l_hat(v_hat), w l).

BCEs are on the mean per-step logit (= BCE on the original's sigmoid output). Optimisers: Adam
2e-4, betas (0.5, 0.999), one per part (:func:`atvgnet_optimizers`).
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_talkface.models.atvgnet_config import as_config
from tf_talkface.models.discriminator import RegressionDiscriminator
from tf_talkface.models.gan import GANModel
from tf_talkface.models.vgnet import VGNet

MOUTH_Y_INDICES = tuple(range(97, 136, 2))
"""Flattened indices of the y-coordinates of mouth points 48-67 (x0, y0, x1, ... layout)."""


def landmark_weights(mouth_weight: float = 100.0, n: int = 136) -> np.ndarray:
    """(n,) float32: 1 everywhere, ``mouth_weight`` at :data:`MOUTH_Y_INDICES`."""
    w = np.ones(n, np.float32)
    w[list(MOUTH_Y_INDICES)] = mouth_weight
    return w


def dynamic_pixel_loss(fake: Any, real: Any, attention: Any, beta: float = 0.5,
                       weight: float = 10.0) -> tf.Tensor:
    """Per example ``weight * mean(|fake - real| * (stop_gradient(attention) + beta))`` over
    (T, H, W, C): (B,) float32. ``fake``/``real`` (B, T, H, W, 3), ``attention`` (B, T, H, W, 1)
    (broadcast over channels). No gradient reaches ``attention``."""
    a = tf.stop_gradient(tf.cast(attention, tf.float32))
    d = tf.abs(tf.cast(fake, tf.float32) - tf.cast(real, tf.float32)) * (a + beta)
    return weight * tf.reduce_mean(tf.reshape(d, (tf.shape(d)[0], -1)), -1)


def weighted_landmark_mse(pred: Any, target: Any, weights: Any) -> tf.Tensor:
    """Per example ``mean((w * pred - w * target) ** 2)`` over (T, 136): (B,) float32."""
    w = tf.constant(np.asarray(weights, np.float32))
    d = tf.square(w * (tf.cast(pred, tf.float32) - tf.cast(target, tf.float32)))
    return tf.reduce_mean(tf.reshape(d, (tf.shape(d)[0], -1)), -1)


def bce_logits(logit: Any, label: float) -> tf.Tensor:
    """Per example binary cross-entropy of ``sigmoid(logit)`` against a constant label: (B,)."""
    logit = tf.cast(logit, tf.float32)
    return tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logit), float(label)), logit)


def atvgnet_optimizers(lr: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999
                       ) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """(g_optimizer, d_optimizer): Adam(2e-4, betas (0.5, 0.999)) each, as the original. Create
    them inside the strategy scope."""
    return (keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2, name="g_adam"),
            keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2, name="d_adam"))


@keras.saving.register_keras_serializable(package="tf_talkface")
class ATVGnetGAN(GANModel):
    """VG-net + regression discriminator with the original's losses (module docstring).

    Metrics: ``d_loss``, ``d_real``, ``d_fake`` (BCEs), ``d_lmark_real``, ``d_lmark_fake``;
    ``g_loss``, ``g_pix``, ``g_gan``, ``g_lmark``.

    Args:
        generator: :class:`VGNet`; discriminator: :class:`RegressionDiscriminator`.
        pix_weight, beta: dynamic pixel loss ``pix_weight * mean(|.| (alpha + beta))`` (10, 0.5).
        gan_weight, lmark_weight: weights of G's BCE and landmark terms (1, 1); the
            discriminator's terms are unweighted, as the original.
        mouth_weight: landmark mask value at the mouth y-coordinates (100).
    """

    D_TERMS = ("d_real", "d_fake", "d_lmark_real", "d_lmark_fake")
    G_TERMS = ("g_pix", "g_gan", "g_lmark")

    def __init__(self, generator: VGNet, discriminator: RegressionDiscriminator,
                 pix_weight: float = 10.0, beta: float = 0.5, gan_weight: float = 1.0,
                 lmark_weight: float = 1.0, mouth_weight: float = 100.0, **kwargs: Any) -> None:
        super().__init__(generator, discriminator, **kwargs)
        self.pix_weight = float(pix_weight)
        self.beta = float(beta)
        self.gan_weight = float(gan_weight)
        self.lmark_weight = float(lmark_weight)
        self.mouth_weight = float(mouth_weight)
        self.landmark_w = landmark_weights(self.mouth_weight, generator.config.n_landmarks)

    def compile(self, g_optimizer: Any = None, d_optimizer: Any = None, **kwargs: Any) -> None:
        """As :meth:`GANModel.compile`; a missing optimizer is Adam(2e-4, betas (0.5, 0.999))."""
        if g_optimizer is None or d_optimizer is None:
            g_default, d_default = atvgnet_optimizers()
            g_optimizer = g_default if g_optimizer is None else g_optimizer
            d_optimizer = d_default if d_optimizer is None else d_optimizer
        super().compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, **kwargs)

    def _discriminate(self, x: dict, frames: Any, training: bool) -> dict[str, tf.Tensor]:
        return self.discriminator({"frames": frames, "example_landmarks": x["example_landmarks"]},
                                  training=training)

    @staticmethod
    def _target(y: Any) -> Any:
        return y["frames"] if isinstance(y, dict) else y

    def d_losses(self, x: Any, y: Any, fake: Any, training: bool) -> dict[str, tf.Tensor]:
        real = self._discriminate(x, self._target(y), training)
        fk = self._discriminate(x, fake["frames"], training)
        terms = {"d_real": bce_logits(real["logit"], 1.0), "d_fake": bce_logits(fk["logit"], 0.0),
                 "d_lmark_real": weighted_landmark_mse(real["landmarks"], x["landmarks"],
                                                       self.landmark_w),
                 "d_lmark_fake": weighted_landmark_mse(fk["landmarks"], x["landmarks"],
                                                       self.landmark_w)}
        terms["d_loss"] = tf.add_n(list(terms.values()))
        return terms

    def g_losses(self, x: Any, y: Any, fake: Any, training: bool) -> dict[str, tf.Tensor]:
        out = self._discriminate(x, fake["frames"], training)
        terms = {"g_pix": dynamic_pixel_loss(fake["frames"], self._target(y), fake["attention"],
                                             self.beta, self.pix_weight),
                 "g_gan": bce_logits(out["logit"], 1.0),
                 "g_lmark": weighted_landmark_mse(out["landmarks"], x["landmarks"], self.landmark_w)}
        terms["g_loss"] = (terms["g_pix"] + self.gan_weight * terms["g_gan"]
                           + self.lmark_weight * terms["g_lmark"])
        return terms

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(pix_weight=self.pix_weight, beta=self.beta, gan_weight=self.gan_weight,
                      lmark_weight=self.lmark_weight, mouth_weight=self.mouth_weight)
        return config


def build_atvgnet_gan(config: Any = None, **loss_kwargs: Any) -> ATVGnetGAN:
    """VG-net + discriminator for ``config`` (an :class:`ATVGConfig`, its dict or a preset
    name; ``paper`` by default) wrapped in :class:`ATVGnetGAN` (``loss_kwargs``: its loss
    weights). Call inside the strategy scope, then ``compile()`` (default Adam optimizers)."""
    cfg = as_config(config)
    return ATVGnetGAN(VGNet(cfg), RegressionDiscriminator(cfg), **loss_kwargs)
