"""Model registry: build any model by name, and the custom objects needed to load ``.keras`` files.

Names: ``"lstm"`` (Eskimez et al. 2018, :func:`~tf_talkface.models.lstm.build_lstm`),
``"cnn"`` and ``"cnn_tc"`` (Eskimez et al. 2020 SPCH2FLM plain / temporal-condition,
:func:`~tf_talkface.models.cnn.build_cnn`, :func:`~tf_talkface.models.cnn.build_cnn_tc`).
Noise-resilient training wraps a built ``cnn``/``cnn_tc`` in
:class:`~tf_talkface.models.noise_resilient.NoiseResilientModel`.
"""
from __future__ import annotations

from typing import Any, Callable

import keras

from tf_talkface.models.cnn import SpeechToLandmarkCNN, build_cnn, build_cnn_tc
from tf_talkface.models.lstm import build_lstm, keras2_hard_sigmoid
from tf_talkface.models.layers import TargetScale
from tf_talkface.models.noise_resilient import DimWeightedLoss, NoiseResilientModel

MODELS: dict[str, Callable[..., keras.Model]] = {
    "lstm": build_lstm,
    "cnn": build_cnn,
    "cnn_tc": build_cnn_tc,
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
    }
