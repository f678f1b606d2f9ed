"""A reusable Keras GAN: one ``keras.Model`` owning a generator and a discriminator.

Used by ATVGnet's VG-net (:mod:`tf_talkface.models.atvgnet_gan`) and meant for DAVS: a subclass
supplies only its losses (:meth:`GANModel.d_losses`, :meth:`GANModel.g_losses`) and, if its
generator needs something other than ``x``, :meth:`GANModel.generate`.

Training step (``fit``), per batch ``(x, y)`` (``y`` may be ``None``):

1. ``fake = generate(x, training=True)`` under the generator's tape;
2. discriminator step: ``d_losses(x, y, stop_gradient(fake))`` -> gradients of ``d_loss`` for
   the discriminator's variables -> ``d_optimizer`` (the generator's tape does not record it);
3. generator step: ``g_losses(x, y, fake)`` with the *updated* discriminator -> gradients of
   ``g_loss`` for the generator's variables -> ``g_optimizer``.

This is the order of ATVGnet's and DAVS's PyTorch loops (one generator forward per step; D first,
G against the updated D).

Losses and replicas. A hook returns a dict of terms; each is either *per example* (shape (B,):
the mean over everything but the batch axis; an (B, ...) tensor is averaged to (B,)) or a scalar
(already the mean over this replica's batch). Gradients use
``tf.nn.compute_average_loss(per_example)`` (sum / global batch) and ``scalar / replicas``, so
the summed gradients of N replicas equal one device on the global batch. The Mean trackers get
each replica's local mean, which Keras averages over replicas (exact for equal shares).
Regularisation losses of a part (``part.losses``) are added to its total.

Metrics: ``d_loss``, ``g_loss`` and every other term name the hooks return (declared by the
subclass in ``D_TERMS``/``G_TERMS``). ``test_step`` (validation, ``evaluate``) computes both
dicts with ``training=False`` and no update.

Optimizers: ``compile(g_optimizer=..., d_optimizer=...)`` (inside the strategy scope) builds
both at once, so ``save_weights``/``load_weights`` and ``BackupAndRestore`` (which save the
whole model: both parts and both optimizers' slots) work before the first step. Under a
``mixed_float16`` policy both are wrapped in a ``LossScaleOptimizer``. ``save_parts``/
``load_parts`` write/read the two parts' weights as separate ``.weights.h5`` files.
"""
from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

GENERATOR_WEIGHTS = "generator.weights.h5"
DISCRIMINATOR_WEIGHTS = "discriminator.weights.h5"


def _per_example(term: tf.Tensor) -> tf.Tensor:
    term = tf.cast(term, tf.float32)
    if term.shape.rank is not None and term.shape.rank > 1:
        term = tf.reduce_mean(term, axis=list(range(1, term.shape.rank)))
    return term


def reduce_term(term: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(value to differentiate, this replica's mean) of a loss term.

    Per-example terms ((B,) or (B, ...)): ``compute_average_loss`` (sum / global batch) and the
    local mean. Scalars (a replica-local mean): ``term / replicas`` and the term.
    """
    term = _per_example(term)
    if term.shape.rank == 0:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return term / replicas, term
    return tf.nn.compute_average_loss(term), tf.reduce_mean(term)


def _unpack(data: Any) -> tuple[Any, Any]:
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x, y


class GANModel(keras.Model):
    """Generator + discriminator trained adversarially in one ``fit`` (module docstring).

    Subclasses set ``D_TERMS``/``G_TERMS`` (names of the terms their hooks return besides
    ``d_loss``/``g_loss``) and implement :meth:`d_losses` and :meth:`g_losses`.

    Args:
        generator, discriminator: built Keras models (or layers).

    ``model(x)`` / ``predict`` run the generator (``training=False`` unless given).
    """

    D_TERMS: tuple[str, ...] = ()
    G_TERMS: tuple[str, ...] = ()

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        names = ("d_loss",) + tuple(self.D_TERMS) + ("g_loss",) + tuple(self.G_TERMS)
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self).__name__}: duplicate term names {names}")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """Both parts are built by their constructors."""
        self.built = True

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    # --- hooks -----------------------------------------------------------------------------

    def generate(self, x: Any, training: bool | None = None) -> Any:
        """The generator's output for input ``x`` (default ``generator(x)``)."""
        return self.generator(x, training=training)

    def d_losses(self, x: Any, y: Any, fake: Any, training: bool) -> dict[str, tf.Tensor]:
        """Discriminator terms for one batch; ``fake`` is already stop-gradient. Must contain
        ``d_loss`` (the total to minimise) and the names of ``D_TERMS``; values per example
        ((B,) / (B, ...)) or scalar replica means (module docstring)."""
        raise NotImplementedError

    def g_losses(self, x: Any, y: Any, fake: Any, training: bool) -> dict[str, tf.Tensor]:
        """Generator terms for one batch (``fake`` carries gradients). Must contain ``g_loss``
        and the names of ``G_TERMS``."""
        raise NotImplementedError

    # --- Keras -----------------------------------------------------------------------------

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.generate(inputs, training=training)

    def compile(self, g_optimizer: Any = None, d_optimizer: Any = None, **kwargs: Any) -> None:
        """Set (and build) both optimizers; other keyword arguments go to ``keras.Model.compile``
        (``run_eagerly``, ``jit_compile``, ``steps_per_execution``; no ``optimizer``/``loss``).
        Keras' ``jit_compile="auto"`` resolves to no XLA on a CPU; ``jit_compile=True`` made
        VG-net training 3-5x slower on this CPU (``scripts/bench_atvgnet.py --jit true``).

        Raises:
            ValueError: an optimizer is missing, or ``optimizer``/``loss`` was given.
        """
        if "optimizer" in kwargs or "loss" in kwargs:
            raise ValueError("GANModel.compile takes g_optimizer and d_optimizer (the losses are "
                             "the model's), not optimizer/loss")
        if g_optimizer is None or d_optimizer is None:
            raise ValueError("GANModel.compile needs g_optimizer and d_optimizer")
        super().compile(optimizer=None, **kwargs)
        g_opt = keras.optimizers.get(g_optimizer)
        d_opt = keras.optimizers.get(d_optimizer)
        if self.dtype_policy.name == "mixed_float16":
            LSO = keras.optimizers.LossScaleOptimizer
            g_opt = g_opt if isinstance(g_opt, LSO) else LSO(g_opt, name="g_loss_scale_optimizer")
            d_opt = d_opt if isinstance(d_opt, LSO) else LSO(d_opt, name="d_loss_scale_optimizer")
        self.g_optimizer, self.d_optimizer = g_opt, d_opt
        g_opt.build(self.generator.trainable_variables)
        d_opt.build(self.discriminator.trainable_variables)

    def get_compile_config(self) -> dict[str, Any] | None:
        if self.g_optimizer is None:
            return None
        return {"g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
                "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer)}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
                     d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]))

    def _reduce(self, terms: dict[str, tf.Tensor], total: str, part: keras.Model
                ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        missing = {total, *(self.D_TERMS if total == "d_loss" else self.G_TERMS)} - set(terms)
        if missing:
            raise ValueError(f"{type(self).__name__}: loss hook did not return {sorted(missing)}")
        means = {}
        for name, value in terms.items():
            scaled, mean = reduce_term(value)
            if name == total:
                loss = scaled
            means[name] = mean
        if part.losses:
            reg = tf.add_n([tf.cast(v, tf.float32) for v in part.losses])
            loss = loss + reg / tf.distribute.get_strategy().num_replicas_in_sync
            means[total] = means[total] + reg
        return loss, means

    def _update(self, means: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in means.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y = _unpack(data)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as g_tape:
            fake = self.generate(x, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_loss, d_means = self._reduce(
                        self.d_losses(x, y, tf.nest.map_structure(tf.stop_gradient, fake), True),
                        "d_loss", self.discriminator)
                    d_scaled = self.d_optimizer.scale_loss(d_loss)
                d_grads = d_tape.gradient(d_scaled, d_vars)
                self.d_optimizer.apply(d_grads, d_vars)
            g_loss, g_means = self._reduce(self.g_losses(x, y, fake, True), "g_loss",
                                           self.generator)
            g_scaled = self.g_optimizer.scale_loss(g_loss)
        g_grads = g_tape.gradient(g_scaled, g_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        return self._update({**d_means, **g_means})

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y = _unpack(data)
        fake = self.generate(x, training=False)
        _, d_means = self._reduce(self.d_losses(x, y, fake, False), "d_loss", self.discriminator)
        _, g_means = self._reduce(self.g_losses(x, y, fake, False), "g_loss", self.generator)
        return self._update({**d_means, **g_means})

    def save_parts(self, folder: str | os.PathLike) -> tuple[str, str]:
        """Write ``generator.weights.h5`` and ``discriminator.weights.h5`` into ``folder``
        (created); returns their paths. (``save_weights`` on the whole model also stores the
        optimizers' state.)"""
        os.makedirs(folder, exist_ok=True)
        g = os.path.join(folder, GENERATOR_WEIGHTS)
        d = os.path.join(folder, DISCRIMINATOR_WEIGHTS)
        self.generator.save_weights(g)
        self.discriminator.save_weights(d)
        return g, d

    def load_parts(self, folder: str | os.PathLike, discriminator: bool = True) -> None:
        """Read the weights written by :meth:`save_parts` (the discriminator's only if
        ``discriminator``)."""
        self.generator.load_weights(os.path.join(folder, GENERATOR_WEIGHTS))
        if discriminator:
            self.discriminator.load_weights(os.path.join(folder, DISCRIMINATOR_WEIGHTS))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(generator=keras.saving.serialize_keras_object(self.generator),
                      discriminator=keras.saving.serialize_keras_object(self.discriminator))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "GANModel":
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"),
                                                          custom_objects=custom_objects)
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"),
                                                              custom_objects=custom_objects)
        return cls(generator=generator, discriminator=discriminator, **config)
