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

__all__ = ["CARD_FILE", "CARD_FORMAT", "BASIS_FILE", "DEFAULT_MODEL", "MODEL_ENV", "ModelError",
           "default_model_dir", "resolve_model_dir", "read_card"]

CARD_FILE = "model_card.json"
BASIS_FILE = "pca_basis.json"
CARD_FORMAT = "tf_talkface-savedmodel"
DEFAULT_MODEL = "cnn_nr_grid_s1"
"""Name of the bundled default model under ``saved_models/``: the noise-resilient 2020 CNN trained
on GRID s1 (its mouth moves 8x more than the bundled LSTM's; see saved_models/README.md)."""
MODEL_ENV = "TF_TALKFACE_MODEL"
"""Environment variable that overrides the default model folder."""


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
    if not p.is_dir():
        raise ModelError(f"{p}: model folder not found")
    if (p / CARD_FILE).is_file() or (p / "saved_model.pb").is_file():
        return p
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
        return resolve_model_dir(env)
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
    if card.get("format") != CARD_FORMAT:
        raise ModelError(f"{f}: not a tf_talkface model card (format {card.get('format')!r})")
    return card
