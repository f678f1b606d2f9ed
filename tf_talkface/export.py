"""Export a trained model as a SavedModel that takes a raw waveform (``python -m tf_talkface.export``).

The exported graph holds the whole inference path, TensorFlow core ops only (no tensorflow-io),
so TF Serving can load it:

- ``lstm`` (Eskimez et al. 2018): waveform at 44.1 kHz -> :class:`~tf_talkface.audio.layers.LogMelDeltas`
  (reflect-padded STFT, librosa's mel matrix as a constant, log, deltas) -> context stacking ->
  the 4-layer LSTM, run **once** over the whole sequence (the original predicted every frame
  from its own 75-frame window) -> the frame delay undone (first ``delay`` frames dropped, last
  frame repeated, per item) -> (frames, 68, 2).
- ``cnn`` / ``cnn_tc`` (Eskimez et al. 2020): waveform at 8 kHz -> peak scaling and zero padding
  (:func:`~tf_talkface.models.cnn.pad_and_scale_tf`) -> the fully-convolutional trunk + head
  (``cnn_tc``: the autoregressive loop in-graph with ``tf.scan``, started from the template's
  coefficients) -> PCA reconstruction (the dataset's basis as constants) -> (frames, 68, 2).

Signatures (all float32 / int32; ``batch`` and lengths are free):

================  ===============================================  ==============================
key               inputs                                           outputs
================  ===============================================  ==============================
serving_default   ``waveform`` (batch, samples), ``lengths``       ``landmarks`` (batch, frames,
                  (batch,) valid samples per row (right padding)    68, 2), ``frames`` (batch,)
full_length       ``waveform`` (batch, samples), every row full     same
features          lstm: ``features`` (batch, frames, 128) log-mel   same
                  deltas, ``frames`` (batch,); cnn: ``features``
                  (batch, padded samples) scaled+padded waveform,
                  ``frames`` (batch,)
================  ===============================================  ==============================

CNN models also output ``pca_coefficients`` (batch, frames, k). Row ``i`` of a batch gives
exactly what row ``i`` alone would give; frames past ``frames[i]`` are zero. Frames are at 25 fps:
``1 + samples // 1764`` (lstm, 44.1 kHz) or ``ceil(samples / 320)`` (cnn, 8 kHz).

Next to ``saved_model.pb``: ``model_card.json`` (:mod:`tf_talkface.saved_model`) and, for CNN
models, ``pca_basis.json``.
"""
from __future__ import annotations

import os

from tf_talkface.console import os_error_message, quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface import __version__
from tf_talkface.config import FPS, LogMelConfig
from tf_talkface.data.manifest import write_json_atomic
from tf_talkface.card import CARD_FILE, CARD_FORMAT, BASIS_FILE, ModelError

__all__ = ["ExportError", "TrainedModel", "load_trained", "python_path_predict",
           "output_filter_layer", "export_model", "export", "main"]

GRID_PROVENANCE = {
    "corpus": "GRID audio-visual sentence corpus (Cooke, Barker, Cunningham, Shao 2006)",
    "license": "CC BY 4.0",
    "url": "https://doi.org/10.5281/zenodo.3625687",
}
"""Provenance of the GRID corpus, recorded in the model cards of models trained on it."""


class ExportError(ValueError):
    """A run or checkpoint that cannot be exported (missing files, unknown model, no basis)."""


@dataclass
class TrainedModel:
    """A trained prediction network with everything inference needs.

    Attributes:
        net: the Keras prediction model (LSTM functional model or ``SpeechToLandmarkCNN``; never
            the noise-resilient training wrapper).
        kind: ``"lstm"``, ``"cnn"`` or ``"cnn_tc"``.
        train: the run's ``TrainConfig`` as a dict.
        dataset: provenance of the training data (name, recipe, manifest SHA-1, clip counts).
        neutral_face: (68, 2) float32 — the training split's mean landmarks (what "no speech"
            looks like in the model's coordinates).
        basis: ``PCABasis`` for CNN models, else ``None``.
        test_metrics: the run's test-split metrics (``{"model": ..., "mean_face": ...}``) or {}.
        budget: training updates and hours, including the runs it continued (checkpoints
            written by ``scripts/collect_results.py --weights``), or {}.
        source: where it came from (run folder or checkpoint file).
        output_filter: ``lstm`` only: an optional edge-padded
            :class:`~tf_talkface.models.layers.TemporalFilter` over the (frames, 136) landmark
            output after the delay is undone (issue 11; fitted by :mod:`tf_talkface.post_filter`
            in a PCA of the landmarks, :func:`~tf_talkface.models.layers.fold_pca_filter`).
            The CNNs carry theirs inside the network (``net.post_filter``).
    """

    net: Any
    kind: str
    train: dict
    dataset: dict
    neutral_face: np.ndarray
    basis: Any = None
    test_metrics: dict = field(default_factory=dict)
    source: str = ""
    budget: dict = field(default_factory=dict)
    output_filter: Any = None

    @property
    def post_filter(self) -> Any:
        """The temporal post-filter (a ``TemporalFilter``) or ``None``: the LSTM's
        :attr:`output_filter` on its landmarks, a CNN's ``net.post_filter`` on its PCA
        coefficients. Streams come ``post_filter.frames`` x 40 ms later."""
        return self.output_filter if self.kind == "lstm" else getattr(self.net, "post_filter", None)

    @property
    def sample_rate(self) -> int:
        """Input sample rate in Hz: 44100 (lstm) or 8000 (cnn)."""
        return 44100 if self.kind == "lstm" else 8000

    @property
    def level(self):
        """The input :class:`~tf_talkface.audio.level.LevelConfig` (``peak`` for the LSTM, whose
        delta features do not depend on level, and for runs made before level modes)."""
        from tf_talkface.audio.level import LevelConfig

        return LevelConfig("peak" if self.kind == "lstm" else (self.train.get("level") or "peak"))

    @property
    def delay(self) -> int:
        return int(self.train.get("delay", 0)) if self.kind == "lstm" else 0

    @property
    def context(self) -> int:
        return int(self.train.get("context", 0)) if self.kind == "lstm" else 0

    def initial_condition(self) -> np.ndarray:
        """(k,) float32 TC start: the template's PCA coefficients (zeros without a template)."""
        if self.basis is None or self.basis.template is None:
            return np.zeros(0 if self.basis is None else self.basis.n_components, np.float32)
        return self.basis.project(self.basis.template).astype(np.float32)


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def dataset_summary(manifest: dict, manifest_sha1: str, name: str) -> dict:
    """Provenance of a training dataset for model cards and checkpoints (JSON-ready dict)."""
    sources = [str(s) for s in manifest.get("sources", [])]
    out = {"name": name, "recipe": manifest["recipe"]["name"], "manifest_sha1": manifest_sha1,
           "counts": manifest.get("counts", {}), "split": manifest.get("split", {}),
           "sources": sources, "created": manifest.get("created"),
           # how landmarks were normalised (2018: the eye-aligned mean shape, 68 x 2 pixels), so
           # landmarks extracted from a new video can be brought into the model's coordinates
           "normalisation": manifest.get("normalisation", {})}
    if any("grid" in s.lower() for s in sources) or "grid" in name.lower():
        out["provenance"] = GRID_PROVENANCE
    return out


def neutral_face_of(manifest: dict) -> np.ndarray:
    """(68, 2) float32 mean training landmarks from a manifest's ``feature_stats``."""
    mean = np.asarray(manifest["feature_stats"]["landmarks"]["mean"], np.float32)
    return mean.reshape(68, -1)


def _unwrap(model: Any) -> Any:
    return model.model if hasattr(model, "w_feat") else model


def _build_net(kind: str, model_config: dict):
    import keras

    from tf_talkface.models.cnn import SpeechToLandmarkCNN

    if kind == "lstm":
        return keras.Model.from_config(model_config)
    return SpeechToLandmarkCNN.from_config(model_config)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: unreadable {what} ({type(e).__name__}: {_first_line(e)})") from None


def load_trained(source: str | os.PathLike, basis: str | os.PathLike | None = None) -> TrainedModel:
    """Load a trained model from a run folder or a committed checkpoint.

    Args:
        source: a ``train`` run folder (``config.json``, ``best.keras`` or ``final.keras``,
            ``manifest.json``, ``metrics.json``), or a checkpoint ``NAME.json`` written by
            ``scripts/collect_results.py --weights`` (``NAME.weights.h5`` beside it, and for CNN
            models ``NAME.basis.json``).
        basis: PCA basis file or dataset folder for CNN models; default: the checkpoint's
            ``NAME.basis.json`` or the run's dataset folder (``<data>/basis.json``).

    Raises:
        ExportError: missing files, an unknown model, or a CNN without a PCA basis.
    """
    from tf_talkface.face.pca import PCABasis

    src = Path(source)
    output_filter = None
    if src.is_dir():
        cfg_file = src / "config.json"
        if not cfg_file.is_file():
            raise ExportError(f"{src}: not a training run (no config.json)")
        cfg = _read_json(cfg_file, "the run's config")
        train = cfg.get("train") if isinstance(cfg, dict) else None
        if not isinstance(train, dict):
            raise ExportError(f"{cfg_file}: not a tf_talkface run config (no 'train' settings)")
        ckpt = next((src / n for n in ("best.keras", "final.keras") if (src / n).is_file()), None)
        if ckpt is None:
            raise ExportError(f"{src}: the run has no best.keras or final.keras (not trained yet, "
                              "or the training diverged and kept no weights)")
        import keras

        from tf_talkface.models.registry import custom_objects

        try:
            net = _unwrap(keras.saving.load_model(ckpt, custom_objects=custom_objects(),
                                                  compile=False))
        except Exception as e:  # noqa: BLE001 - truncated zip, bad h5, unknown layer...
            raise ExportError(f"{ckpt}: cannot load the trained model ({type(e).__name__}: "
                              f"{_first_line(e)})") from None
        man_file = src / "manifest.json"
        if not man_file.is_file():
            raise ExportError(f"{src}: manifest.json (the dataset's, copied at training) is missing")
        manifest = _read_json(man_file, "the dataset manifest")
        dataset = dataset_summary(manifest, cfg.get("manifest_sha1") or _sha1(man_file),
                                  Path(train["data"]).name)
        neutral = neutral_face_of(manifest)
        metrics = json.loads((src / "metrics.json").read_text()).get("test", {}) \
            if (src / "metrics.json").is_file() else {}
        budget = {}
        default_basis = Path(train["data"]) / "basis.json"
    elif src.is_file() and src.suffix == ".json":
        ck = _read_json(src, "checkpoint")
        if not isinstance(ck, dict) or "train" not in ck or "model_config" not in ck:
            raise ExportError(f"{src}: not a tf_talkface checkpoint (needs 'train' and 'model_config')")
        train = ck["train"]
        weights = src.with_name(src.stem + ".weights.h5")
        if not weights.is_file():
            raise ExportError(f"{src}: weights file {weights.name} not found beside it")
        try:
            net = _build_net(train["model"], ck["model_config"])
        except Exception as e:  # noqa: BLE001 - a hand-edited config: many error types
            raise ExportError(f"{src}: cannot build the model from its 'model_config' "
                              f"({type(e).__name__}: {_first_line(e)})") from None
        try:
            net.load_weights(weights)
        except Exception as e:  # noqa: BLE001 - truncated/corrupt HDF5, other architecture
            raise ExportError(f"{weights}: cannot load the weights ({type(e).__name__}: "
                              f"{_first_line(e)}); the file may be truncated or belong to "
                              "another model") from None
        if "dataset" not in ck or "neutral_face" not in ck:
            raise ExportError(f"{src}: the checkpoint has no dataset provenance / neutral face; "
                              "re-create it with scripts/collect_results.py --weights")
        dataset, neutral = ck["dataset"], np.asarray(ck["neutral_face"], np.float32).reshape(68, -1)
        metrics = ck.get("test", {})
        budget = ck.get("training_budget", {})
        default_basis = src.with_name(src.stem + ".basis.json")
        if train.get("model") == "lstm" and "post_filter" in ck:
            output_filter = _load_output_filter(src)
    else:
        raise ExportError(f"{src}: expected a run folder or a checkpoint NAME.json")
    kind = train.get("model")
    if kind not in ("lstm", "cnn", "cnn_tc"):
        raise ExportError(f"{src}: unknown model {kind!r}")
    for v in net.weights + (output_filter.weights if output_filter is not None else []):
        if not np.all(np.isfinite(np.asarray(v.numpy()))):
            raise ExportError(f"{src}: non-finite weights (NaN/Inf) in {getattr(v, 'path', v.name)}:"
                              " the training diverged; retrain (with a lower --lr, or check the "
                              "data for NaN) instead of exporting this model")
    pca = None
    if kind != "lstm":
        b = Path(basis) if basis else default_basis
        if b.is_dir():
            b = b / "basis.json"
        if not b.is_file():
            raise ExportError(f"{src}: a {kind} model needs the PCA basis of its dataset; {b} not "
                              "found (give --basis tfrecords/NAME or a basis.json)")
        pca = PCABasis.load(b)
        if pca.n_components != net.n_out:
            raise ExportError(f"{b}: basis has {pca.n_components} components, the model outputs "
                              f"{net.n_out}")
    return TrainedModel(net=net, kind=kind, train=train, dataset=dataset, neutral_face=neutral,
                        basis=pca, test_metrics=metrics, source=str(src), budget=budget,
                        output_filter=output_filter)


OUTPUT_FILTER_SUFFIX = ".post_filter.npz"
"""Beside an LSTM checkpoint ``NAME.json``: its post-filter, ``kernel`` (2K+1, 136, 136) and
``bias`` (136,) float32 of an edge-padded ``TemporalFilter`` (:mod:`tf_talkface.post_filter`)."""


def output_filter_layer(kernel: np.ndarray, bias: np.ndarray) -> Any:
    """The LSTM's post-filter: a built ``TemporalFilter(K, dim, "edge")`` with these weights.

    Raises:
        ValueError: a kernel that is not (2K+1, dim, dim) with K >= 1, or a bias not (dim,).
    """
    from tf_talkface.models.layers import TemporalFilter

    taps, d, d2 = np.shape(kernel)
    if taps % 2 != 1 or taps < 3 or d != d2 or np.shape(bias) != (d,):
        raise ValueError(f"kernel {np.shape(kernel)} / bias {np.shape(bias)} are not a filter")
    layer = TemporalFilter((taps - 1) // 2, d, padding="edge", name="output_filter")
    layer.kernel.assign(np.asarray(kernel, np.float32))
    layer.bias.assign(np.asarray(bias, np.float32))
    return layer


def _load_output_filter(src: Path) -> Any:
    f = src.with_name(src.stem + OUTPUT_FILTER_SUFFIX)
    try:
        with np.load(f) as z:
            return output_filter_layer(z["kernel"], z["bias"])
    except (OSError, KeyError, ValueError) as e:
        raise ExportError(f"{f}: cannot load the checkpoint's post-filter ({type(e).__name__}: "
                          f"{_first_line(e)})") from None


def python_path_predict(model: TrainedModel, waveform: np.ndarray,
                        peak: float | None = None, causal: bool = False) -> np.ndarray:
    """The library's Python inference path for one clip (numpy front-end + Keras model).

    Args:
        model: a :class:`TrainedModel`.
        waveform: float mono (samples,) at ``model.sample_rate`` Hz.
        peak: CNN models only: fixed peak normalisation instead of the clip's max |x| (see
            :func:`~tf_talkface.models.cnn.pad_and_scale`; what :mod:`tf_talkface.stream` uses).
            Ignored by models with a loudness input level.
        causal: models with a loudness input level: normalise with the causal rule of the
            streamers (:func:`~tf_talkface.audio.level.causal_normalise`) instead of the whole
            clip's level, i.e. the offline twin of a stream.

    Returns:
        float32 (frames, 68, 2) at 25 fps in the model's normalised coordinates: lstm: numpy
        :func:`~tf_talkface.audio.features.logmel_delta_features` -> ``add_context`` -> LSTM ->
        :func:`~tf_talkface.data.pipeline.undelay`; cnn: :func:`~tf_talkface.models.cnn.pad_and_scale`
        -> network (``cnn_tc``: :func:`~tf_talkface.models.cnn.generate_tc`) -> PCA reconstruction.
        The exported SavedModel must give the same numbers (tests: within 1e-4).
    """
    y = np.asarray(waveform, np.float32)
    if model.kind == "lstm":
        from tf_talkface.audio.features import add_context, logmel_delta_features
        from tf_talkface.data.pipeline import undelay

        x = add_context(logmel_delta_features(y, LogMelConfig()), model.context)[None]
        pred = undelay(np.asarray(model.net(x, training=False))[0], model.delay)
        if model.output_filter is not None:
            pred = model.output_filter.numpy(pred)
        return pred.reshape(-1, 68, 2).astype(np.float32)
    from tf_talkface.models import cnn as C
    from tf_talkface.models.cnn import generate_tc, pad_and_scale

    level = model.level
    if level.mode == "loudness":
        from tf_talkface.audio.level import causal_normalise

        w = (pad_and_scale(causal_normalise(y, C.SAMPLE_RATE, C.HOP, level), peak=1.0) if causal
             else pad_and_scale(y, level=level))[None]
    else:
        w = pad_and_scale(y, peak=peak)[None]
    if model.kind == "cnn_tc":
        codes = generate_tc(model.net, w, model.initial_condition()[None])
    else:
        codes = model.net(w, training=False)
    return model.basis.reconstruct(np.asarray(codes)[0]).astype(np.float32)


# ----------------------------------------------------------------------------- the graph

def _serving_fns(model: TrainedModel):
    """The traced functions of the exported signatures (closures over ``model``)."""
    import tensorflow as tf

    from tf_talkface.audio.features import min_samples
    from tf_talkface.audio.layers import LogMelDeltas, stack_context
    from tf_talkface.models import cnn as C
    from tf_talkface.models.lstm import StackedLSTMInference
    from tf_talkface.stream_graph import stream_graph_for

    net, kind = model.net, model.kind

    def _filter_clips(pf, y, n_frames):
        """``pf`` over a padded batch (batch, T, dim): each clip continued beyond its own
        last frame by the filter's padding, as alone."""
        valid = tf.range(tf.shape(y)[1])[None, :] < n_frames[:, None]
        beyond = (tf.gather(y, tf.maximum(n_frames - 1, 0), batch_dims=1)[:, None]
                  if pf.padding == "edge" else tf.zeros_like(y))
        return pf(tf.where(valid[..., None], y, beyond))

    def _finish(flat, n_frames, extra=None):
        t = tf.shape(flat)[1]
        valid = tf.range(t)[None, :] < n_frames[:, None]
        flat = tf.where(valid[..., None], flat, tf.zeros_like(flat))
        out = {"landmarks": tf.reshape(flat, [tf.shape(flat)[0], t, 68, 2]),
               "frames": tf.cast(n_frames, tf.int32)}
        if extra is not None:
            out["pca_coefficients"] = tf.where(valid[..., None], extra, tf.zeros_like(extra))
        return out

    def _check_lengths(waveform, lengths, minimum):
        lengths = tf.cast(lengths, tf.int32)
        return [tf.debugging.assert_less_equal(lengths, tf.shape(waveform)[1],
                                               message="lengths larger than the waveform"),
                tf.debugging.assert_greater_equal(
                    lengths, minimum, message=f"waveform shorter than {minimum} samples")], lengths

    if kind == "lstm":
        front = LogMelDeltas.from_logmel_config(LogMelConfig())
        hop = front.cfg.hop_length
        n_feat = 2 * front.cfg.n_mels
        delay, context = model.delay, model.context
        stack = StackedLSTMInference(net)  # same weights and math as net, 4-5x faster on CPU

        def from_features(features, frames):
            frames = tf.cast(frames, tf.int32)
            x = stack_context(tf.cast(features, tf.float32), context)
            y = stack(x)
            t = tf.shape(y)[1]
            idx = tf.minimum(tf.range(t)[None, :] + delay, tf.maximum(frames[:, None] - 1, 0))
            y = tf.gather(y, idx, batch_dims=1)
            if model.output_filter is not None:
                y = _filter_clips(model.output_filter, y, frames)
            return _finish(y, frames)

        def from_waveform(waveform, lengths):
            checks, lengths = _check_lengths(waveform, lengths, min_samples(front.cfg))
            with tf.control_dependencies(checks):
                frames = 1 + lengths // hop
            t_max = tf.reduce_max(frames)

            def one(args):
                x, n = args
                f = front(x[None, :n])[0]
                return tf.pad(f, [[0, t_max - tf.shape(f)[0]], [0, 0]])

            feats = tf.map_fn(one, (tf.cast(waveform, tf.float32), lengths),
                              fn_output_signature=tf.TensorSpec([None, n_feat], tf.float32))
            return from_features(feats, frames)

        feature_spec = tf.TensorSpec([None, None, n_feat], tf.float32, name="features")
    else:
        comps = tf.constant(model.basis.components, tf.float32)
        mean = tf.constant(model.basis.mean, tf.float32)
        init = tf.constant(model.initial_condition(), tf.float32)

        def from_features(features, frames):
            frames = tf.cast(frames, tf.int32)
            w = tf.cast(features, tf.float32)
            pf = getattr(net, "post_filter", None)
            codes = (C.generate_tc(net, w, init[None]) if kind == "cnn_tc"
                     else net(w, training=False, post_filter=False))
            codes = tf.convert_to_tensor(codes)[:, :tf.reduce_max(frames)]
            if pf is not None:
                codes = _filter_clips(pf, codes, frames)
            return _finish(tf.einsum("btk,kd->btd", codes, comps) + mean, frames, codes)

        def from_waveform(waveform, lengths):
            checks, lengths = _check_lengths(waveform, lengths, 1)
            with tf.control_dependencies(checks):
                frames = (lengths + C.HOP - 1) // C.HOP
            x = tf.cast(waveform, tf.float32)
            x = tf.where(tf.sequence_mask(lengths, tf.shape(x)[1]), x, tf.zeros_like(x))
            return from_features(C.pad_and_scale_tf(x, tf.reduce_max(frames), level=model.level,
                                                    lengths=lengths), frames)

        feature_spec = tf.TensorSpec([None, None], tf.float32, name="features")

    wave_spec = tf.TensorSpec([None, None], tf.float32, name="waveform")
    len_spec = tf.TensorSpec([None], tf.int32, name="lengths")
    frames_spec = tf.TensorSpec([None], tf.int32, name="frames")

    def full_length(waveform):
        n = tf.shape(waveform)[1]
        return from_waveform(waveform, tf.fill(tf.shape(waveform)[:1], n))

    return {
        "serving_default": (from_waveform, [wave_spec, len_spec]),
        "full_length": (full_length, [wave_spec]),
        "features": (from_features, [feature_spec, frames_spec]),
        **stream_graph_for(model).signature_fns(),  # stream_init / stream_step / stream_flush
    }


def model_card(model: TrainedModel, name: str, version: int) -> dict:
    """The ``model_card.json`` contents of an exported model (JSON-ready dict)."""
    import tensorflow as tf

    from tf_talkface.stream_graph import stream_graph_for, stream_latency_ms

    kind = model.kind
    card = {
        "format": CARD_FORMAT,
        "format_version": 1,
        "name": name,
        "version": int(version),
        "model": kind,
        "paper": ("Eskimez et al. 2018, Generating talking face landmarks from speech (LVA/ICA)"
                  if kind == "lstm" else
                  "Eskimez et al. 2020, Noise-resilient training method for face landmark "
                  "generation from speech (IEEE/ACM TASLP)"),
        "recipe": model.dataset.get("recipe"),
        "sample_rate": model.sample_rate,
        "fps": FPS,
        "landmark_dim": 2,
        "delay": model.delay,
        "context": model.context,
        "post_filter_frames": int(getattr(model.post_filter, "frames", 0)),
        "post_filter_padding": getattr(model.post_filter, "padding", None),
        "noise_resilient": bool(model.train.get("noise")),
        "input_level": model.level.to_dict(),
        "frames_for_samples": ("1 + samples // 1764" if kind == "lstm" else "ceil(samples / 320)"),
        "min_samples": (LogMelConfig().n_fft // 2 + 1) if kind == "lstm" else 1,
        "coordinates": ("2018 recipe: eye-aligned face on a 600-px canvas divided by 600 "
                        "(x right, y down)" if kind == "lstm" else
                        "2020 recipe: Procrustes-aligned, identity-removed, unit-norm frame "
                        "reconstructed from PCA coefficients (x right, y down)"),
        "neutral_face": np.round(model.neutral_face, 6).tolist(),
        "pca_basis": BASIS_FILE if model.basis is not None else None,
        "training_data": model.dataset,
        "train_config": model.train,
        "test_metrics": model.test_metrics,
        "training_budget": model.budget,
        "signatures": {
            "serving_default": {"inputs": {"waveform": "float32 (batch, samples)",
                                           "lengths": "int32 (batch,)"},
                                "outputs": {"landmarks": "float32 (batch, frames, 68, 2)",
                                            "frames": "int32 (batch,)"}},
            "full_length": {"inputs": {"waveform": "float32 (batch, samples)"},
                            "outputs": "as serving_default"},
            "features": {"inputs": {"features": ("float32 (batch, frames, 128) log-mel deltas"
                                                 if kind == "lstm" else
                                                 "float32 (batch, padded samples) scaled+padded"),
                                    "frames": "int32 (batch,)"},
                         "outputs": "as serving_default"},
        },
        "source": model.source,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tf_talkface_version": __version__,
        "tensorflow_version": tf.__version__,
    }
    if kind != "lstm":
        card["signatures"]["serving_default"]["outputs"]["pca_coefficients"] = \
            "float32 (batch, frames, k)"
    graph = stream_graph_for(model)
    state = {n: f"{s.dtype.name} {tuple(s.shape.as_list())}".replace("None", "n")
             for n, s in graph.state_specs.items()}
    card["signatures"].update({
        "stream_init": {"inputs": {"peak": "float32 () fixed peak normalisation (CNN; "
                                           "the LSTM ignores it)"},
                        "outputs": "state_* (the initial session state)"},
        "stream_step": {"inputs": {"audio": "float32 (samples,) any length", "state_*": "..."},
                        "outputs": {"landmarks": "float32 (frames, 68, 2) newly determined",
                                    "state_*": "the new session state"}},
        "stream_flush": {"inputs": {"state_*": "..."},
                         "outputs": {"landmarks": "float32 (frames, 68, 2) the remaining"}},
    })
    latency, worst = stream_latency_ms(kind, model.delay, card["post_filter_frames"])
    card["streaming"] = {"latency_ms": latency, "max_latency_ms": worst, "state": state,
                         "doc": "tf_talkface.stream_graph (docs/serving.md, 'Streaming sessions')"}
    return card


def export_model(model: TrainedModel, out: str | os.PathLike, name: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``model`` as a SavedModel version folder ``out`` (e.g. ``saved_models/NAME/1``).

    The folder is written to a temp sibling and renamed at the end, so ``out`` is either complete
    (``saved_model.pb``, ``variables/``, ``model_card.json``, CNN: ``pca_basis.json``) or absent.

    Args:
        model: from :func:`load_trained`.
        out: version folder; its name must be a positive integer (TF Serving's layout).
        name: model name for the card (default: the parent folder's name).
        overwrite: replace an existing ``out``.

    Raises:
        ExportError: ``out`` exists (without ``overwrite``) or its name is not a version number.
    """
    import tensorflow as tf

    out = Path(out)
    if not out.name.isdigit() or int(out.name) < 1:
        raise ExportError(f"{out}: the last folder must be a version number >= 1 "
                          "(TF Serving layout saved_models/NAME/VERSION)")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --overwrite or choose another version")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        # A plain tf.Module holding the network's tf.Variables (keras.export.ExportArchive in
        # Keras 3.15 writes every variable twice: 16 MB instead of 8 MB for the LSTM).
        module = tf.Module()
        extra = model.output_filter.variables if model.output_filter is not None else []
        module.tf_variables = [getattr(v, "value", v) for v in model.net.variables + extra]
        signatures = {}
        for key, (fn, spec) in _serving_fns(model).items():
            f = tf.function(fn, input_signature=spec, autograph=False)
            setattr(module, key, f)
            signatures[key] = f.get_concrete_function()
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if model.basis is not None:
            model.basis.save(tmp / BASIS_FILE)
        write_json_atomic(tmp / CARD_FILE, model_card(model, name or out.parent.name, int(out.name)))
        _umask_permissions(tmp)  # mkdtemp made it 0700: a server running as another user reads it
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask_permissions(root: Path) -> None:
    """Folders ``0777 & ~umask``, files ``0666 & ~umask`` below ``root`` (and ``root``)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(root, 0o777 & ~mask)
    for d, dirs, files in os.walk(root):
        for n in dirs:
            os.chmod(os.path.join(d, n), 0o777 & ~mask)
        for n in files:
            os.chmod(os.path.join(d, n), 0o666 & ~mask)


def export(source: str | os.PathLike, out: str | os.PathLike, basis: str | None = None,
           name: str | None = None, overwrite: bool = False) -> Path:
    """:func:`load_trained` + :func:`export_model` (the CLI's library function). An ATVGnet
    checkpoint folder (with ``atvgnet.json``) goes to
    :func:`tf_talkface.atvgnet_serving.export_atvgnet`."""
    from tf_talkface.atvgnet_serving import CHECKPOINT_FILE, export_atvgnet

    if (Path(source) / CHECKPOINT_FILE).is_file():
        if Path(out).exists() and not overwrite:
            raise ExportError(f"{out} exists; pass --overwrite to replace it")
        return export_atvgnet(source, out, name=name)
    return export_model(load_trained(source, basis), out, name=name, overwrite=overwrite)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.export",
        description="Export a trained model as a SavedModel with a raw-waveform signature "
                    "(+ model_card.json), ready for generate and TF Serving.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run folder (runs/NAME)")
    src.add_argument("--checkpoint", help="committed checkpoint saved_models/checkpoints/NAME.json "
                     "(ATVGnet: the checkpoint folder with atvgnet.json)")
    p.add_argument("--out", required=True, help="version folder, e.g. saved_models/NAME/1")
    p.add_argument("--basis", help="CNN models: PCA basis (dataset folder or basis.json)")
    p.add_argument("--name", help="model name in the card (default: the folder above the version)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = export(args.run or args.checkpoint, args.out, args.basis, args.name, args.overwrite)
    except (ExportError, ModelError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # read-only or full disk, permissions, --out an existing file
        print(f"export: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    card = json.loads((out / CARD_FILE).read_text())
    print(f"exported {card['model']} ({card['sample_rate']} Hz in, {card['fps']} fps out) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
