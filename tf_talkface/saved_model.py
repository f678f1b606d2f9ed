"""Load exported tf_talkface SavedModels: :func:`load_model` -> :class:`LoadedModel`.

An exported model is a TF Serving version folder ``saved_models/NAME/VERSION/`` with
``saved_model.pb``, ``variables/`` and ``model_card.json`` (written by :mod:`tf_talkface.export`;
its signatures are described there). :class:`LoadedModel` runs it from Python for
``generate``; TF Serving runs the same folder (``docs/serving.md``). Card names, the card reader
and the bundled default model's location live in :mod:`tf_talkface.card` (re-exported here).
``tf_talkface.load_model`` is :func:`load_model`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface.card import (BASIS_FILE, CARD_FILE, CARD_FORMAT, DEFAULT_MODEL, MODEL_ENV,
                              ModelError, default_model_dir, read_card, resolve_model_dir)
from tf_talkface.stream_graph import SignatureStreamer
from tf_talkface.streamer import stream_in_chunks, streaming_peak

__all__ = ["CARD_FILE", "CARD_FORMAT", "BASIS_FILE", "DEFAULT_MODEL", "MODEL_ENV", "ModelError",
           "LONG_AUDIO_SECONDS", "LoadedModel", "default_model_dir", "resolve_model_dir", "read_card", "load_model"]

LONG_AUDIO_SECONDS = 120.0
""":meth:`LoadedModel.predict` processes longer audio in chunks of this many seconds."""


@dataclass
class LoadedModel:
    """An exported model loaded for inference (TensorFlow's SavedModel loader).

    Attributes:
        path: the version folder.
        card: its model card (see :func:`tf_talkface.export.model_card`).
        module: the loaded SavedModel object (``.signatures`` has ``serving_default``,
            ``full_length``, ``features``, and ``stream_init``/``stream_step``/``stream_flush``
            since issue 6).
    """

    path: Path
    card: dict
    module: Any

    @property
    def sample_rate(self) -> int:
        """Input sample rate of the waveform in Hz."""
        return int(self.card["sample_rate"])

    @property
    def kind(self) -> str:
        """``"lstm"``, ``"cnn"`` or ``"cnn_tc"`` (model card ``model``)."""
        return str(self.card["model"])

    @property
    def name(self) -> str:
        return f"{self.card['name']}/{self.card['version']}"

    def neutral_face(self, frames: int) -> np.ndarray:
        """The training mean face repeated: float32 (frames, 68, 2) — output for silent input."""
        face = np.asarray(self.card["neutral_face"], np.float32)
        return np.repeat(face[None], frames, axis=0)

    def frames_for_samples(self, n: int) -> int:
        """Output frames (25 fps) for ``n`` input samples at :attr:`sample_rate`."""
        if self.card["model"] == "lstm":
            return 1 + n // 1764
        return -(-n // 320)

    def predict(self, waveform: np.ndarray, chunk_seconds: float = LONG_AUDIO_SECONDS) -> np.ndarray:
        """Landmarks of one mono waveform.

        Audio longer than ``chunk_seconds`` goes through the streaming signatures in chunks of
        ``chunk_seconds`` with carried state (:func:`tf_talkface.streamer.stream_in_chunks`; CNN:
        normalised by the clip's own peak, as in one go), so an hour of speech never builds
        an hour-sized graph buffer; the frames equal the one-call result (float32 round-off,
        tested). Models with a loudness input level (``card["input_level"]``, issue 11) are
        normalised there by the streams' causal rule, which follows level changes along a long
        recording; their chunked result equals one stream of the whole file, and differs from
        one call only through that normalisation. Shorter audio runs ``serving_default`` in
        one call.

        Args:
            waveform: float (samples,) at :attr:`sample_rate` Hz, any length >=
                ``card["min_samples"]``.
            chunk_seconds: the one-call limit and chunk length in seconds (``inf``: always one
                call).

        Returns:
            float32 (frames, 68, 2) at 25 fps in the model's normalised coordinates.

        Raises:
            ModelError: not 1-D, NaN/Inf samples, shorter than the model's minimum, or the model
                produced non-finite landmarks.
        """
        w = np.asarray(waveform)
        if not np.all(np.isfinite(w)):
            raise ModelError(f"the waveform holds {int(np.count_nonzero(~np.isfinite(w)))} "
                             "NaN/Inf sample(s); refusing non-finite audio")
        if (w.ndim == 1 and len(w) > chunk_seconds * self.sample_rate
                and "stream_step" in self.module.signatures):
            w = w.astype(np.float32, copy=False)
            return stream_in_chunks(self.streamer(peak=streaming_peak(self.kind, w, None)), w,
                                    chunk_seconds)
        return self.predict_batch([waveform])[0]

    def predict_batch(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        """Landmarks of several waveforms in one call (right-padded batch + ``lengths``).

        Returns a list of float32 (frames_i, 68, 2) arrays.
        """
        import tensorflow as tf

        ws = [np.asarray(w, np.float32) for w in waveforms]
        for w in ws:
            if w.ndim != 1:
                raise ModelError(f"expected mono waveforms (samples,), got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ModelError(f"the waveform holds {int(np.count_nonzero(~np.isfinite(w)))} "
                                 "NaN/Inf sample(s); refusing non-finite audio")
            if len(w) < int(self.card.get("min_samples", 1)):
                raise ModelError(f"waveform of {len(w)} samples is shorter than the model's "
                                 f"minimum ({self.card['min_samples']} samples at "
                                 f"{self.sample_rate} Hz)")
        lengths = np.array([len(w) for w in ws], np.int32)
        batch = np.zeros((len(ws), int(lengths.max())), np.float32)
        for i, w in enumerate(ws):
            batch[i, :len(w)] = w
        out = self.module.signatures["serving_default"](waveform=tf.constant(batch),
                                                        lengths=tf.constant(lengths))
        lm, frames = out["landmarks"].numpy(), out["frames"].numpy()
        return [lm[i, :frames[i]] for i in range(len(ws))]


    def streamer(self, peak: float = 1.0) -> SignatureStreamer:
        """A streaming session over the SavedModel's ``stream_*`` signatures: a
        :class:`~tf_talkface.stream_graph.SignatureStreamer` (``push``/``flush``/``reset``).

        Args:
            peak: fixed peak normalisation of CNN models (1.0 = full-scale input).

        Raises:
            ModelError: the SavedModel was exported without streaming signatures.
        """
        try:
            return SignatureStreamer(self.module, self.card["model"], self.sample_rate,
                                     int(self.card.get("delay") or 0), peak=peak,
                                     post_filter_frames=int(self.card.get("post_filter_frames") or 0))
        except ValueError as e:
            raise ModelError(f"{self.path}: {e}") from None


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load an exported model (``None`` = :func:`default_model_dir`).

    Raises:
        ModelError: not a tf_talkface SavedModel folder, or TensorFlow cannot load it.
    """
    d = default_model_dir() if path is None else resolve_model_dir(path)
    try:
        card = read_card(d)
        import tensorflow as tf

        try:
            module = tf.saved_model.load(str(d))
        except Exception as e:  # noqa: BLE001 - TF raises many types for a broken folder
            raise ModelError(f"{d}: TensorFlow cannot load the SavedModel ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
        if "serving_default" not in module.signatures:
            raise ModelError(f"{d}: the SavedModel has no serving_default signature")
    except ModelError as e:
        if path is None and os.environ.get(MODEL_ENV):
            raise ModelError(f"{e} (this model came from ${MODEL_ENV})") from None
        raise
    return LoadedModel(path=d, card=card, module=module)
