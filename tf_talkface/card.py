"""Model cards and model folders: the bottom of the serving side (no TensorFlow import).

An exported model is a TF Serving version folder ``saved_models/NAME/VERSION/`` with
``saved_model.pb``, ``variables/`` and ``model_card.json``. This module knows the file names, the
card format and where the bundled default model is; :mod:`tf_talkface.export` writes cards with
these names, :mod:`tf_talkface.saved_model` loads the folders they describe.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["CARD_FILE", "CARD_FORMAT", "BASIS_FILE", "DEFAULT_MODEL", "MODEL_ENV", "MODEL_KINDS",
           "ModelError", "default_model_dir", "resolve_model_dir", "read_card", "check_card"]

CARD_FILE = "model_card.json"
BASIS_FILE = "pca_basis.json"
CARD_FORMAT = "tf_talkface-savedmodel"
DEFAULT_MODEL = "cnn_nr_grid_s1"
"""Name of the bundled default model under ``saved_models/``: the noise-resilient 2020 CNN trained
on GRID s1 (its mouth moves 8x more than the bundled LSTM's; see saved_models/README.md)."""
MODEL_ENV = "TF_TALKFACE_MODEL"
"""Environment variable that overrides the default model folder."""
MODEL_KINDS = {"lstm": ("eskimez2018", 44100), "cnn": ("eskimez2020", 8000),
               "cnn_tc": ("eskimez2020", 8000), "atvgnet": ("atvgnet", 16000)}
"""Model kind -> (recipe, input sample rate in Hz): what a card may say (:func:`check_card`)."""


class ModelError(ValueError):
    """A folder that is not a tf_talkface SavedModel, or a model that cannot be run."""


def _versions(model_dir: Path) -> list[Path]:
    return sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """``saved_models/NAME/VERSION`` as given, or the highest version of ``saved_models/NAME``.

    Raises:
        ModelError: the path does not exist, or holds neither a model card nor version folders.
    """
    p = Path(path)
    export = "python -m tf_talkface.export"
    if p.is_file() and p.name == CARD_FILE:
        return p.parent
    if p.is_file() and p.suffix == ".json":
        raise ModelError(f"{p}: a training checkpoint, not an exported model; export it first "
                         f"({export} --checkpoint {p} --out saved_models/NAME/1) and pass that "
                         "folder (stream and evaluate also take the checkpoint itself)")
    if p.is_file():
        raise ModelError(f"{p}: not a model folder (give saved_models/NAME[/VERSION])")
    if not p.is_dir():
        raise ModelError(f"{p}: model folder not found")
    if (p / CARD_FILE).is_file() or (p / "saved_model.pb").is_file():
        return p
    if (p / "config.json").is_file():
        raise ModelError(f"{p}: a training run, not an exported model; export it first ({export} "
                         f"--run {p} --out saved_models/NAME/1) and pass that folder (stream and "
                         "evaluate also take the run folder itself)")
    versions = [v for v in _versions(p) if (v / "saved_model.pb").is_file()]
    if not versions:
        raise ModelError(f"{p}: not a tf_talkface SavedModel (no {CARD_FILE}, no saved_model.pb, "
                         "no numbered version folders)")
    return versions[-1]


def default_model_dir() -> Path:
    """The model ``generate`` uses without ``-m``: ``$TF_TALKFACE_MODEL`` if set, else the highest
    version of ``saved_models/cnn_nr_grid_s1`` (:data:`DEFAULT_MODEL`) of the source checkout
    (next to the package), or of ./saved_models/ in the working directory.

    Raises:
        ModelError: no default model can be found (the message says where it looked).
    """
    env = os.environ.get(MODEL_ENV)
    if env:
        try:
            return resolve_model_dir(env)
        except ModelError as e:
            raise ModelError(f"{e} (this path came from ${MODEL_ENV}; unset it to use the "
                             "bundled model)") from None
    candidates = [Path(__file__).resolve().parents[1] / "saved_models" / DEFAULT_MODEL,
                  Path.cwd() / "saved_models" / DEFAULT_MODEL]
    for c in candidates:
        if c.is_dir():
            return resolve_model_dir(c)
    raise ModelError("no default model: looked in " + ", ".join(map(str, candidates)) +
                     f"; pass -m saved_models/NAME/VERSION or set {MODEL_ENV}")


def read_card(model_dir: str | os.PathLike) -> dict:
    """The model card of an exported model folder (dict).

    Raises:
        ModelError: no ``model_card.json``, unreadable JSON, or another format.
    """
    d = Path(model_dir)
    f = d / CARD_FILE
    if not f.is_file():
        extra = " (a SavedModel, but not exported by tf_talkface)" \
            if (d / "saved_model.pb").is_file() else ""
        raise ModelError(f"{d}: not a tf_talkface SavedModel: {CARD_FILE} missing{extra}")
    try:
        card = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{f}: unreadable model card ({e})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        fmt = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelError(f"{f}: not a tf_talkface model card (format {fmt!r})")
    check_card(card, f)
    return card


def _int(card: dict, key: str, low: int) -> int | None:
    v = card.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{key!r} must be an integer >= {low}, got {v!r}")
    return v


def check_card(card: dict, where: str | os.PathLike = "model card") -> None:
    """Check what inference relies on in a model card: the model kind, its recipe and input
    sample rate (:data:`MODEL_KINDS`), 25 fps, ``min_samples``/``delay``/``context``, and a
    finite (68, 2) ``neutral_face``. A card edited by hand (an unknown recipe, another sample
    rate) would otherwise give wrong frame counts and units without any error.

    Raises:
        ModelError: naming ``where`` and the first bad field.
    """
    import math

    try:
        kind = card.get("model")
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model {kind!r} (expected one of {', '.join(MODEL_KINDS)})")
        recipe, rate = MODEL_KINDS[kind]
        if card.get("recipe") not in (None, recipe):
            raise ValueError(f"recipe {card.get('recipe')!r} does not fit a {kind} model "
                             f"(expected {recipe!r})")
        if _int(card, "sample_rate", 1) != rate:
            raise ValueError(f"sample_rate {card.get('sample_rate')!r} Hz: a {kind} model hears "
                             f"{rate} Hz audio")
        if card.get("fps", 25) != 25:
            raise ValueError(f"fps {card.get('fps')!r}: the models write 25 fps")
        _int(card, "min_samples", 1)
        _int(card, "delay", 0)
        _int(card, "context", 0)
        face = card.get("neutral_face")
        if (not isinstance(face, list) or len(face) != 68
                or not all(isinstance(p, list) and len(p) == 2 for p in face)
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for p in face for v in p)):
            raise ValueError("'neutral_face' must be 68 finite (x, y) points")
    except ValueError as e:
        raise ModelError(f"{where}: invalid model card: {e}") from None
