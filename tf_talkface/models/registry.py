"""Model registry: build any model by name, and the custom objects needed to load ``.keras`` files.

Names: ``"lstm"`` (Eskimez et al. 2018, :func:`~tf_talkface.models.lstm.build_lstm`),
``"cnn"`` and ``"cnn_tc"`` (Eskimez et al. 2020 SPCH2FLM plain / temporal-condition,
:func:`~tf_talkface.models.cnn.build_cnn`, :func:`~tf_talkface.models.cnn.build_cnn_tc`).
Noise-resilient training wraps a built ``cnn``/``cnn_tc`` in
:class:`~tf_talkface.models.noise_resilient.NoiseResilientModel`.

ATVGnet (issue 14; builders take ``config`` = an ``ATVGConfig``, its dict or a preset name, and
field changes): ``"atnet"`` (:func:`~tf_talkface.models.atnet.build_atnet`), ``"vgnet"``
(:func:`~tf_talkface.models.vgnet.build_vgnet`), ``"atvgnet_discriminator"``
(:func:`~tf_talkface.models.discriminator.build_discriminator`) and ``"atvgnet_gan"`` (VG-net +
discriminator in :class:`~tf_talkface.models.atvgnet_gan.ATVGnetGAN`,
:func:`~tf_talkface.models.atvgnet_gan.build_atvgnet_gan`).
"""
from __future__ import annotations

from typing import Any, Callable

import keras

from tf_talkface.models.atnet import ATNet, build_atnet
from tf_talkface.models.atvgnet_gan import ATVGnetGAN, build_atvgnet_gan
from tf_talkface.models.cnn import SpeechToLandmarkCNN, build_cnn, build_cnn_tc
from tf_talkface.models.discriminator import RegressionDiscriminator, build_discriminator
from tf_talkface.models.lstm import build_lstm, keras2_hard_sigmoid
from tf_talkface.models.layers import ReflectionPad2D, TargetScale
from tf_talkface.models.noise_resilient import DimWeightedLoss, NoiseResilientModel
from tf_talkface.models.vgnet import ConvGRU, ResnetBlock, VGNet, build_vgnet

MODELS: dict[str, Callable[..., keras.Model]] = {
    "lstm": build_lstm,
    "cnn": build_cnn,
    "cnn_tc": build_cnn_tc,
    "atnet": build_atnet,
    "vgnet": build_vgnet,
    "atvgnet_discriminator": build_discriminator,
    "atvgnet_gan": build_atvgnet_gan,
}
"""Builder of each model name; call with the builder's keyword arguments."""


def build_model(name: str, **kwargs: Any) -> keras.Model:
    """Build the model registered as ``name`` with the builder's keyword arguments.

    Example: ``build_model("lstm", input_dim=512)``, ``build_model("cnn", n_out=6)``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    try:
        builder = MODELS[name]
    except KeyError:
        valid = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; choose one of {valid}") from None
    return builder(**kwargs)


def custom_objects() -> dict[str, Any]:
    """Objects to pass to ``keras.saving.load_model(path, custom_objects=custom_objects())``.

    They are also registered (package ``tf_talkface``) on import of :mod:`tf_talkface.models`
    submodules, so importing this module is usually enough.
    """
    return {
        "SpeechToLandmarkCNN": SpeechToLandmarkCNN,
        "NoiseResilientModel": NoiseResilientModel,
        "keras2_hard_sigmoid": keras2_hard_sigmoid,
        "TargetScale": TargetScale,
        "DimWeightedLoss": DimWeightedLoss,
        "ATNet": ATNet,
        "VGNet": VGNet,
        "ConvGRU": ConvGRU,
        "ResnetBlock": ResnetBlock,
        "ReflectionPad2D": ReflectionPad2D,
        "RegressionDiscriminator": RegressionDiscriminator,
        "ATVGnetGAN": ATVGnetGAN,
    }
