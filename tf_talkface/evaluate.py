"""Trained models on a prepared test split, clean and in noise: ``python -m tf_talkface.evaluate``.

The evaluation of Eskimez et al. 2020 (noise-resilient training, TASLP; reference.md): landmark
RMSE/LMD of a speech-driven face model against the true landmarks, on clean speech and on the
same speech mixed with each noise type at each SNR, several models side by side. Here:

* every model (an exported SavedModel ``saved_models/NAME[/VERSION]``, a training run folder or
  a checkpoint ``NAME.json``; optional display name ``NAME=PATH``) runs its raw-waveform path
  on each clip's stored audio: SavedModels in batches (``LoadedModel.predict_batch``),
  runs/checkpoints clip by clip (:func:`tf_talkface.export.python_path_predict`);
* each model is evaluated on the first ``--data`` dataset of its own recipe (2020 models: whose
  PCA template equals the model's, else the coordinates would not be comparable); the truth is
  the clip's normalised landmarks, and prediction and truth are trimmed to their common length;
* metrics (:data:`tf_talkface.metrics.METRIC_NAMES`) per clip and overall
  (:func:`tf_talkface.metrics.pooled_metrics`), in the dataset's normalised units
  (:data:`UNITS`), beside two baselines: ``mean_face`` (the training split's mean face from the
  manifest, every frame) and ``shuffled`` (the model's own clean output with its frames permuted
  in time, seeded per clip: what is left when the timing is not driven by the audio);
* noise sweep: every audio file of ``--noise`` (decoded at the model's rate) at every SNR, mixed
  as in the 2020 paper (:func:`tf_talkface.audio.noise.mix_at_snr`: the noise scaled so that
  mean-square speech / mean-square noise over the clip is the SNR); the noise segment starts at
  a time drawn from (seed, clip id, noise name) only (:func:`noise_start_seconds`), so every
  model and SNR hears the same noise.

Outputs in ``--out`` (all written atomically): ``per_clip.csv``, ``summary.json`` (see
:func:`evaluate`), ``results.md`` and, with noise, ``error_vs_snr.png`` (mouth RMSE vs SNR, one
subplot per noise type, one row per unit system) and ``mouth_open_r_vs_snr.png``. Two runs
with the same seed give identical files.
"""
from __future__ import annotations

import os

from tf_talkface.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import csv
import json
import math
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tf_talkface import metrics as M

__all__ = ["UNITS", "BASELINES", "DEFAULT_NOISY_SNRS", "EvaluateError", "EvalModel", "EvalData",
           "parse_model_arg", "load_eval_model", "parse_data_arg", "load_eval_data",
           "match_dataset", "parse_snrs", "snr_key", "find_noise_files", "noise_start_seconds",
           "noisy_speech", "shuffle_frames", "align", "evaluate", "render_markdown",
           "plot_error_vs_snr", "build_parser", "main"]

UNITS = {
    "eskimez2018": "2018 recipe: eye-aligned face on the 600-px canvas, coordinates divided by 600 "
                   "(1.0 = the canvas width; 0.01 = 6 px)",
    "eskimez2020": "2020 recipe: Procrustes-aligned, identity-removed face in the unit-norm frame "
                   "(the 68 centred points have Frobenius norm 1)",
}
"""Units of the metrics per dataset recipe (RMSE/LMD in these units; d1/d2 per frame, frame^2)."""

BASELINES = ("mean_face", "shuffled")
WRAP = 4
"""Noise types per row of subplots in the plots."""
DEFAULT_NOISY_SNRS = ("clean", 20, 10, 5, 0, -5)
"""``--snr`` default with ``--noise`` (the 2020 paper's range plus clean); without: clean only."""

_NOISE_STREAM, _SHUFFLE_STREAM = 0, 1  # separate random streams per purpose


class EvaluateError(ValueError):
    """A model, dataset or noise file that cannot be evaluated (the message names it)."""


# ------------------------------------------------------------------------------------ models


@dataclass
class EvalModel:
    """A model to evaluate, whatever its form.

    Attributes:
        name: display name (table rows, ``summary.json`` keys).
        path: what was given (SavedModel folder, run folder or checkpoint ``.json``).
        form: ``"savedmodel"``, ``"run"`` or ``"checkpoint"``.
        kind: ``"lstm"``, ``"cnn"`` or ``"cnn_tc"``.
        recipe: the dataset recipe it was trained on (``eskimez2018`` / ``eskimez2020``).
        sample_rate: input rate in Hz (44100 / 8000).
        template: (68, 2) float32 PCA template face of 2020 models (``None`` for the LSTM).
        basis_path: the file holding that template (named in the template-mismatch error).
        predict_one: ``waveform (samples,) -> (frames, 68, 2)`` float32.
        predict_many: optional batched version ``list of waveforms -> list of arrays``.
    """

    name: str
    path: str
    form: str
    kind: str
    recipe: str
    sample_rate: int
    template: np.ndarray | None = None
    basis_path: str | None = None
    predict_one: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    predict_many: Callable[[list], list] | None = field(default=None, repr=False)

    def predict(self, waveforms: Sequence[np.ndarray], batch: int = 16) -> list[np.ndarray]:
        """Landmarks of each waveform (float32 mono at :attr:`sample_rate`): a list of float32
        (frames_i, 68, 2) in the model's normalised coordinates, in input order. SavedModels run
        ``batch`` waveforms per call (rows are independent, so the batch does not change the
        numbers); runs/checkpoints one at a time."""
        if self.predict_many is not None:
            out: list[np.ndarray] = []
            for i in range(0, len(waveforms), max(1, batch)):
                out.extend(self.predict_many(list(waveforms[i:i + max(1, batch)])))
            return [np.asarray(p, np.float32) for p in out]
        return [np.asarray(self.predict_one(w), np.float32) for w in waveforms]


def parse_model_arg(arg: str) -> tuple[str | None, str]:
    """``"NAME=PATH"`` -> (NAME, PATH); ``"PATH"`` -> (None, PATH). A path that exists as given
    (even with a ``=`` in it) is taken as a path."""
    if "=" in arg and not Path(arg).exists():
        name, path = arg.split("=", 1)
        if name and "/" not in name and path:
            return name, path
    return None, arg


def load_eval_model(path: str | os.PathLike, name: str | None = None) -> EvalModel:
    """Load a model for evaluation.

    Args:
        path: an exported SavedModel folder (``saved_models/NAME`` = its highest version, or
            ``saved_models/NAME/VERSION``), a training run folder (``config.json``), or a
            checkpoint ``NAME.json`` (``scripts/collect_results.py --weights``).
        name: display name; default: the SavedModel's card name, the run folder's name or the
            checkpoint's file stem.

    Raises:
        EvaluateError: the path does not exist or is none of these, or the model cannot be
            loaded (the message names the path).
    """
    from tf_talkface.data.pipeline import RECIPE_OF_MODEL
    from tf_talkface.export import ExportError, load_trained, python_path_predict
    from tf_talkface.face.pca import PCABasis
    from tf_talkface.saved_model import BASIS_FILE, ModelError, load_model

    p = Path(path)
    if not p.exists():
        raise EvaluateError(f"{p}: model not found (expected an exported SavedModel folder "
                            "saved_models/NAME[/VERSION], a training run folder or a checkpoint "
                            "NAME.json)")
    is_trained = (p.is_file() and p.suffix == ".json") or (p.is_dir() and (p / "config.json").is_file())
    if is_trained:
        try:
            tm = load_trained(p)
        except (ExportError, OSError, KeyError, ValueError) as e:
            raise EvaluateError(f"{p}: cannot load the trained model ({e})") from None
        form = "checkpoint" if p.is_file() else "run"
        basis_path = None
        if tm.kind != "lstm":
            basis_path = str(p.with_name(p.stem + ".basis.json")) if form == "checkpoint" \
                else str(Path(tm.train["data"]) / "basis.json")
        return EvalModel(
            name=name or (p.stem if form == "checkpoint" else p.name), path=str(path), form=form,
            kind=tm.kind, recipe=RECIPE_OF_MODEL[tm.kind], sample_rate=tm.sample_rate,
            template=None if tm.basis is None or tm.basis.template is None
            else np.asarray(tm.basis.template, np.float32),
            basis_path=basis_path, predict_one=lambda w, tm=tm: python_path_predict(tm, w))
    if not p.is_dir():
        raise EvaluateError(f"{p}: not a model (expected an exported SavedModel folder, a training "
                            "run folder or a checkpoint NAME.json)")
    try:
        lm = load_model(p)
    except ModelError as e:
        raise EvaluateError(f"{p}: not a model ({e}); expected an exported SavedModel folder, a "
                            "training run folder (config.json) or a checkpoint NAME.json") from None
    card = lm.card
    kind = card["model"]
    template = basis_path = None
    if kind != "lstm":
        b = lm.path / (card.get("pca_basis") or BASIS_FILE)
        if not b.is_file():
            raise EvaluateError(f"{lm.path}: a {kind} model without its {BASIS_FILE}")
        basis_path = str(b)
        basis = PCABasis.load(b)
        template = None if basis.template is None else np.asarray(basis.template, np.float32)
    return EvalModel(name=name or str(card["name"]), path=str(path), form="savedmodel", kind=kind,
                     recipe=card.get("recipe") or RECIPE_OF_MODEL[kind],
                     sample_rate=int(card["sample_rate"]), template=template,
                     basis_path=basis_path, predict_many=lm.predict_batch)


# ----------------------------------------------------------------------------------- datasets


@dataclass
class EvalData:
    """One split of a prepared dataset, read into memory.

    Attributes:
        path: the dataset folder as given. split: ``test`` (default), ``val`` or ``train``.
        recipe: ``manifest["recipe"]["name"]``. sample_rate: of the stored audio (Hz).
        template: (68, 2) 2020 PCA template of ``basis.json`` (``None`` for 2018).
        mean_face: (68, 2) float32 training-split mean landmarks (``feature_stats``).
        clips: list of dicts ``clip_id`` (str), ``audio`` float32 (samples,),
            ``landmarks`` float32 (frames, 68, 2) normalised, in the split's stored order.
    """

    path: str
    split: str
    recipe: str
    sample_rate: int
    template: np.ndarray | None
    mean_face: np.ndarray
    clips: list[dict]

    @property
    def label(self) -> str:
        return f"{self.path}:{self.split}"


def parse_data_arg(arg: str) -> tuple[str, str]:
    """``"tfrecords/NAME:split"`` -> (path, split); ``"tfrecords/NAME"`` -> (path, ``"test"``)."""
    from tf_talkface.data.manifest import SPLITS

    head, sep, tail = str(arg).rpartition(":")
    if sep and tail in SPLITS and head:
        return head, tail
    return str(arg), "test"


def load_eval_data(arg: str | os.PathLike, max_clips: int | None = None) -> EvalData:
    """Read ``tfrecords/NAME[:split]`` (default split ``test``), the first ``max_clips`` clips.

    Raises:
        DatasetError: missing/incomplete dataset or empty split.
        EvaluateError: no audio, no training mean face, or a 2020 dataset without ``basis.json``.
    """
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.face.pca import PCABasis

    path, split = parse_data_arg(str(arg))
    manifest = load_manifest(path)
    recipe = manifest["recipe"]["name"]
    rate = int(manifest["schema"].get("audio_sample_rate", 0))
    if rate <= 0:
        raise EvaluateError(f"{path}: the dataset has no audio (imported HDF5?); it cannot be "
                            "evaluated from speech")
    try:
        mean = np.asarray(manifest["feature_stats"]["landmarks"]["mean"], np.float32).reshape(68, -1)
    except (KeyError, TypeError, ValueError):
        raise EvaluateError(f"{path}: the manifest has no training mean face "
                            "(feature_stats.landmarks.mean)") from None
    template = None
    if recipe == "eskimez2020":
        try:
            basis = PCABasis.load(path)
        except FileNotFoundError:
            raise EvaluateError(f"{path}: a 2020 dataset without basis.json") from None
        template = None if basis.template is None else np.asarray(basis.template, np.float32)
    ds = read_clips(path, split, manifest)
    if max_clips:
        ds = ds.take(int(max_clips))
    clips = []
    for c in ds.as_numpy_iterator():
        lm = np.asarray(c["landmarks"], np.float32)
        clips.append({"clip_id": c["clip_id"].decode(), "audio": np.asarray(c["audio"], np.float32),
                      "landmarks": lm.reshape(len(lm), 68, -1)})
    return EvalData(path=path, split=split, recipe=recipe, sample_rate=rate, template=template,
                    mean_face=mean, clips=clips)


def _same_template(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6))


def match_dataset(model: EvalModel, datasets: Sequence[EvalData]) -> EvalData:
    """The dataset a model is evaluated on: the first of its recipe (2020: and of its template).

    Raises:
        EvaluateError: no dataset of the model's recipe (names the model and the datasets), or
            (2020) only datasets whose PCA template differs from the model's: prepare the data
            with ``--basis`` the model's ``pca_basis.json``.
    """
    same = [d for d in datasets if d.recipe == model.recipe]
    if not same:
        given = ", ".join(f"{d.label} ({d.recipe})" for d in datasets) or "none"
        raise EvaluateError(f"no dataset for model {model.name} ({model.path}, recipe "
                            f"{model.recipe}): the datasets given are {given}; add --data with "
                            f"an {model.recipe} dataset")
    if model.recipe != "eskimez2020":
        return same[0]
    ok = [d for d in same if _same_template(d.template, model.template)]
    if not ok:
        names = ", ".join(d.label for d in same)
        raise EvaluateError(
            f"model {model.name} ({model.path}) and dataset {names}: different PCA template "
            f"faces, so their normalised coordinates are not comparable; prepare the data with "
            f"--basis {model.basis_path} (python -m tf_talkface.prepare ... --recipe eskimez2020 "
            f"--basis {model.basis_path})")
    return ok[0]


# -------------------------------------------------------------------------------------- noise


def parse_snrs(values: Sequence[Any] | None, with_noise: bool) -> list:
    """``["clean", "20", 10, ...]`` -> ``["clean", 20, 10, ...]`` (numbers as int when whole, in
    the order given, duplicates dropped). ``None``: :data:`DEFAULT_NOISY_SNRS` with noise, else
    ``["clean"]``.

    Raises:
        EvaluateError: a value that is neither ``clean`` nor a finite number, or SNRs in dB
            without noise.
    """
    if values is None:
        values = DEFAULT_NOISY_SNRS if with_noise else ("clean",)
    out: list = []
    for v in values:
        if str(v).lower() == "clean":
            s: Any = "clean"
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise EvaluateError(f"--snr {v!r}: expected 'clean' or a number (dB)") from None
            if not math.isfinite(f):
                raise EvaluateError(f"--snr {v!r}: not a finite number")
            s = int(f) if f == int(f) else f
        if s not in out:
            out.append(s)
    if not with_noise and any(s != "clean" for s in out):
        raise EvaluateError("--snr in dB needs --noise DIR (the noise files to mix in)")
    return out


def snr_key(snr: Any) -> str:
    """The string key of an SNR in ``summary.json``: ``"clean"``, ``"20"``, ``"-5"``, ``"2.5"``."""
    if snr == "clean":
        return "clean"
    f = float(snr)
    return str(int(f)) if f == int(f) else repr(f)


def find_noise_files(noise_dir: str | os.PathLike) -> list[Path]:
    """The audio files (:data:`tf_talkface.audio.noise.AUDIO_EXTENSIONS`, as training's
    ``NoiseBank``) directly in ``noise_dir``, sorted by name.

    Raises:
        EvaluateError: not a folder, or no audio file in it.
    """
    from tf_talkface.audio.noise import AUDIO_EXTENSIONS

    d = Path(noise_dir)
    if not d.is_dir():
        raise EvaluateError(f"--noise {d}: not a folder")
    files = sorted(f for f in d.iterdir()
                   if f.is_file() and not f.name.startswith(".")
                   and f.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise EvaluateError(f"--noise {d}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def noise_name(path: Path, all_paths: Sequence[Path]) -> str:
    """The noise type's name: the file stem, or the file name where two files share a stem."""
    stems = [p.stem for p in all_paths]
    return path.stem if stems.count(path.stem) == 1 else path.name


def noise_start_seconds(seed: int, clip_id: str, noise: str, clip_seconds: float,
                        noise_seconds: float) -> float:
    """Start time (s) in the noise file of the segment mixed into one clip.

    Drawn uniformly in ``[0, noise_seconds - clip_seconds]`` (0 when the noise is shorter: it is
    then tiled) by a generator seeded with ``(seed, clip id, noise name)`` only (CRC-32 of the
    strings: stable across processes), so every model and every SNR hears the same segment
    whatever its sample rate. ``seed`` >= 0.
    """
    rng = np.random.default_rng([int(seed), _NOISE_STREAM, zlib.crc32(clip_id.encode()),
                                 zlib.crc32(noise.encode())])
    u = float(rng.random())
    return u * max(0.0, float(noise_seconds) - float(clip_seconds))


def noisy_speech(speech: np.ndarray, noise: np.ndarray, sample_rate: int, snr_db: float,
                 seed: int, clip_id: str, noise_label: str) -> np.ndarray:
    """The clip's speech mixed with a segment of ``noise`` at ``snr_db`` (2020 paper mixing).

    Args:
        speech: float32 (samples,) at ``sample_rate``. noise: float32 (n,) at the same rate.
        snr_db: target SNR: mean-square speech / mean-square scaled noise over the clip, in dB.
        seed, clip_id, noise_label: pick the segment (:func:`noise_start_seconds`).

    Returns:
        float32 (samples,) = ``speech + k * segment`` (:func:`~tf_talkface.audio.noise.mix_at_snr`,
        no clipping); :func:`~tf_talkface.audio.noise.measure_snr_db` of it gives ``snr_db``.

    Raises:
        EvaluateError: the noise segment is silent (no SNR can be reached).
    """
    from tf_talkface.audio.noise import mix_at_snr, noise_segment

    speech = np.asarray(speech, np.float32)
    start = noise_start_seconds(seed, clip_id, noise_label, len(speech) / sample_rate,
                                len(noise) / sample_rate)
    seg = noise_segment(noise, len(speech), int(round(start * sample_rate)))
    try:
        return mix_at_snr(speech, seg, snr_db)
    except ValueError as e:
        raise EvaluateError(f"noise {noise_label}, clip {clip_id}: {e}") from None


# ---------------------------------------------------------------------------- per-clip work


def shuffle_frames(pred: np.ndarray, seed: int, clip_id: str) -> np.ndarray:
    """The frames of one clip's prediction (frames, ...) in a random order seeded by
    (seed, clip id): the ``shuffled`` baseline (same faces, timing no longer from the audio)."""
    rng = np.random.default_rng([int(seed), _SHUFFLE_STREAM, zlib.crc32(clip_id.encode())])
    return pred[rng.permutation(len(pred))]


def align(pred: np.ndarray, true: np.ndarray, clip_id: str, model: str = "") -> tuple:
    """Trim a prediction and the truth (frames, 68, 2) to their common length.

    The model's framing (e.g. the LSTM's ``1 + samples // 1764``) may give one frame more or less
    than the video's landmarks.

    Raises:
        EvaluateError: the lengths differ by more than 1 frame (names the clip).
    """
    if abs(len(pred) - len(true)) > 1:
        raise EvaluateError(f"clip {clip_id}: model {model} predicted {len(pred)} frames, the "
                            f"landmarks have {len(true)} (more than 1 frame apart)")
    n = min(len(pred), len(true))
    return pred[:n], true[:n]


def _resampled(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return audio
    import librosa

    return np.asarray(librosa.resample(audio, orig_sr=rate_in, target_sr=rate_out,
                                       res_type="soxr_hq"), np.float32)


def _clean_floats(x: Any) -> Any:
    """NaN/inf -> None (strict JSON), recursively; numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean_floats(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_floats(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---------------------------------------------------------------------------------- evaluate


def evaluate(models: Sequence[Any], data: Sequence[Any], noise_dir: str | os.PathLike | None = None,
             snrs: Sequence[Any] | None = None, out: str | os.PathLike | None = None, seed: int = 0,
             max_clips: int | None = None, batch: int = 16, progress: bool = True) -> dict:
    """Evaluate models on their datasets, clean and with noise (Eskimez 2020's RMSE/LMD vs SNR).

    Args:
        models: each a path, ``"NAME=PATH"``, ``(NAME, PATH)`` or an :class:`EvalModel`.
        data: each ``"tfrecords/NAME[:split]"`` (default split ``test``) or an :class:`EvalData`.
        noise_dir: folder of noise files (``None``: clean speech only).
        snrs: conditions, ``"clean"`` and/or dB numbers (default :func:`parse_snrs`). Clean
            metrics are always computed (they hold the baselines).
        out: output folder (``None``: nothing written).
        seed: >= 0; picks the noise segments and the shuffled baseline's permutations.
        max_clips: only the first N clips of each dataset split.
        batch: waveforms per SavedModel call.
        progress: tqdm bar over (model, condition).

    Returns:
        The summary (also ``out/summary.json``; NaN written as ``null``)::

            {"models": {NAME: {"model": kind, "recipe", "data": "path:split", "path", "form",
                               "units", "n_clips", "n_frames", <metrics>,
                               "baselines": {"mean_face": {<metrics>}, "shuffled": {<metrics>}},
                               "noise": {NOISE: {"20": {<metrics>}, ...}}}},
             "units": {recipe: text}, "seed", "snr": [...], "noise_files": [...],
             "noise_dir", "max_clips"}

        ``<metrics>`` = :data:`tf_talkface.metrics.METRIC_NAMES` over all clips
        (:func:`tf_talkface.metrics.pooled_metrics`), in the dataset's units (:data:`UNITS`).
        The clean metrics sit at the top level of each model; the noise tables hold the dB SNRs.
        The mean face has no mouth-opening correlation (a static face): ``mouth_open_r`` is NaN.

    Raises:
        EvaluateError: a model or dataset that cannot be used (see :func:`load_eval_model`,
            :func:`match_dataset`, :func:`align`), bad SNRs or noise, duplicate model names.
        DatasetError: a missing or incomplete dataset.
    """
    from tqdm.auto import tqdm

    from tf_talkface.audio.io import AudioError, load_audio

    if int(seed) < 0:
        raise EvaluateError(f"--seed must be >= 0, got {seed}")
    if not models:
        raise EvaluateError("no model to evaluate (give -m MODEL)")
    if not data:
        raise EvaluateError("no dataset (give --data tfrecords/NAME[:split])")
    conditions = parse_snrs(snrs, noise_dir is not None)
    noisy_snrs = [s for s in conditions if s != "clean"]
    noise_files = find_noise_files(noise_dir) if noise_dir is not None else []
    noise_labels = [noise_name(f, noise_files) for f in noise_files]

    datasets = [d if isinstance(d, EvalData) else load_eval_data(d, max_clips) for d in data]
    for d in datasets:
        if not d.clips:
            raise EvaluateError(f"{d.label}: no clips")
    ems: list[EvalModel] = []
    for m in models:
        if isinstance(m, EvalModel):
            ems.append(m)
            continue
        name, path = m if isinstance(m, tuple) else parse_model_arg(str(m))
        ems.append(load_eval_model(path, name))
    names = [m.name for m in ems]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EvaluateError(f"several models named {', '.join(dup)}: name them with -m NAME=PATH")
    pairs = [(m, match_dataset(m, datasets)) for m in ems]

    noise_cache: dict[tuple[int, int], np.ndarray] = {}

    def noise_at(i: int, rate: int) -> np.ndarray:
        if (i, rate) not in noise_cache:
            try:
                noise_cache[(i, rate)] = load_audio(noise_files[i], rate)
            except AudioError as e:
                raise EvaluateError(f"noise file: {e}") from None
        return noise_cache[(i, rate)]

    cond_list = [("none", "clean")] + [(lab, s) for lab in noise_labels for s in noisy_snrs]
    rows: list[dict] = []
    summary_models: dict[str, dict] = {}
    bar = tqdm(total=len(pairs) * len(cond_list), desc="evaluate", unit="condition",
               disable=not progress)
    for model, ds in pairs:
        rate = model.sample_rate
        speech = [_resampled(c["audio"], ds.sample_rate, rate) for c in ds.clips]
        trues = [c["landmarks"] for c in ds.clips]
        ids = [c["clip_id"] for c in ds.clips]
        entry: dict[str, Any] = {"model": model.kind, "recipe": model.recipe, "data": ds.label,
                                 "path": model.path, "form": model.form,
                                 "units": UNITS.get(ds.recipe, "the dataset's normalised units")}
        noise_tables: dict[str, dict] = {}
        for lab, snr in cond_list:
            bar.set_postfix_str(f"{model.name} {lab} {snr_key(snr)}", refresh=False)
            if snr == "clean":
                waves = speech
            else:
                i = noise_labels.index(lab)
                waves = [noisy_speech(s, noise_at(i, rate), rate, float(snr), seed, cid, lab)
                         for s, cid in zip(speech, ids)]
            preds = model.predict(waves, batch)
            ps, ts = [], []
            for p, t, cid in zip(preds, trues, ids):
                p, t = align(p, t, cid, model.name)
                ps.append(p)
                ts.append(t)
            systems = {"model": ps}
            if snr == "clean":
                systems["mean_face"] = [np.broadcast_to(ds.mean_face, t.shape) for t in ts]
                systems["shuffled"] = [shuffle_frames(p, seed, cid) for p, cid in zip(ps, ids)]
            for system, sp in systems.items():
                for p, t, cid in zip(sp, ts, ids):
                    rows.append({"model": model.name, "system": system, "noise": lab,
                                 "snr": snr_key(snr), "clip_id": cid, "frames": len(t),
                                 **M.clip_metrics(p, t)})
                pooled = M.pooled_metrics(sp, ts)
                if snr != "clean":
                    noise_tables.setdefault(lab, {})[snr_key(snr)] = pooled
                elif system == "model":
                    entry.update({"n_clips": len(ts), "n_frames": int(sum(len(t) for t in ts)),
                                  **pooled})
                else:
                    entry.setdefault("baselines", {})[system] = pooled
            bar.update(1)
        entry["noise"] = noise_tables
        summary_models[model.name] = entry
    bar.close()

    recipes = sorted({ds.recipe for _, ds in pairs})
    summary = _clean_floats({
        "models": summary_models,
        "units": {r: UNITS.get(r, "the dataset's normalised units") for r in recipes},
        "metrics": list(M.METRIC_NAMES),
        "seed": int(seed), "snr": conditions, "noise_dir": None if noise_dir is None else str(noise_dir),
        "noise_files": [f.name for f in noise_files], "max_clips": max_clips,
    })
    if out is not None:
        write_outputs(summary, rows, out)
    return summary


# ---------------------------------------------------------------------------------- outputs


def write_outputs(summary: dict, rows: list[dict], out: str | os.PathLike) -> dict[str, Path]:
    """Write ``per_clip.csv``, ``summary.json``, ``results.md`` and (with noise) the two plots
    into ``out`` (created), each atomically. Returns ``{kind: path}``."""
    from tf_talkface.atomic import atomic_output
    from tf_talkface.data.manifest import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    cols = ["model", "system", "noise", "snr", "clip_id", "frames", *M.METRIC_NAMES]
    with atomic_output(out / "per_clip.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in rows:
                w.writerow([r[c] if c not in M.METRIC_NAMES else repr(float(r[c])) for c in cols])
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone to read
    files["per_clip"] = out / "per_clip.csv"
    write_json_atomic(out / "summary.json", summary, indent=1)
    files["summary"] = out / "summary.json"
    with atomic_output(out / "results.md") as tmp:
        Path(tmp).write_text(render_markdown(summary))
        os.chmod(tmp, 0o644)
    files["results"] = out / "results.md"
    files.update(plot_error_vs_snr(summary, out))
    return files


def _fmt(v: Any, metric: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.3f}" if metric in ("mouth_open_r", "open_range", "open_range_true") else f"{v:.4g}"


def _snr_columns(summary: dict) -> list[str]:
    """Table columns: clean, then the dB SNRs from high to low."""
    nums = sorted({float(s) for s in summary["snr"] if s != "clean"}, reverse=True)
    return ["clean"] + [snr_key(s) for s in nums]


def render_markdown(summary: dict) -> str:
    """``results.md``: the clean table with the baselines under each model, then for each noise
    type a table of mouth RMSE, LMD and mouth-opening r per model and SNR, and the mean over
    noise types."""
    metrics = summary.get("metrics", list(M.METRIC_NAMES))
    models = summary["models"]
    lines = ["# Landmark prediction: clean speech and noise", ""]
    lines.append("Metrics (`python -m tf_talkface.evaluate`, after Eskimez et al. 2020's RMSE/LMD vs "
                 "SNR): `all_rmse`/`mouth_rmse` = RMSE over all 68 / the 20 mouth points; "
                 "`d1_rmse`/`d2_rmse` = RMSE of the 1st/2nd temporal differences (per frame, "
                 "frame², 25 fps); `lmd` = mean Euclidean distance of the centred mouth points; "
                 "`mouth_open_r` = Pearson r over time of the inner-lip gap (mean over clips). "
                 "RMSE/LMD over all frames of all clips. Lower is better except r.")
    lines.append("")
    lines.append("Units (coordinates of the dataset each model is evaluated on):")
    for r, u in summary["units"].items():
        lines.append(f"- `{r}`: {u}")
    lines += ["", "Baselines: `mean face` = the training split's mean face on every frame; "
              "`shuffled` = the model's own clean output with its frames shuffled in time "
              f"(seed {summary['seed']}).", ""]
    lines += ["## Clean speech", ""]
    head = ["model", "system", "data", "clips", "frames", *metrics]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 5 + ["---:"] * len(metrics)) + "|")
    for name, e in models.items():
        systems = [("model", e)] + [(b.replace("_", " "), e["baselines"][b]) for b in BASELINES]
        for label, vals in systems:
            first = label == "model"
            cells = [f"**{name}**" if first else "", label, f"`{e['data']}`" if first else "",
                     str(e["n_clips"]) if first else "", str(e["n_frames"]) if first else ""]
            cells += [_fmt(vals.get(m), m) for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
    noises = sorted({n for e in models.values() for n in e.get("noise", {})})
    if noises:
        cols = _snr_columns(summary)
        shown = ["mouth_rmse", "lmd", "mouth_open_r"]
        lines += ["", "## Noise", "",
                  f"Noise files: {', '.join(summary['noise_files'])} "
                  f"(`{summary.get('noise_dir')}`), mixed at each SNR as in Eskimez et al. 2020 "
                  "(mean-square speech / noise over the clip); the same noise segment for every "
                  "model and SNR. Columns: SNR in dB.", ""]
        for noise in noises:
            lines += [f"### {noise}", "", "| model | metric | " + " | ".join(cols) + " |",
                      "|---|---|" + "|".join(["---:"] * len(cols)) + "|"]
            for name, e in models.items():
                if noise not in e.get("noise", {}):
                    continue
                for m in shown:
                    vals = [e.get(m) if c == "clean" else e["noise"][noise].get(c, {}).get(m)
                            for c in cols]
                    lines.append(f"| {name} | {m} | " + " | ".join(_fmt(v, m) for v in vals) + " |")
            lines.append("")
        lines += ["### Mean over noise types", "", "| model | metric | " + " | ".join(cols) + " |",
                  "|---|---|" + "|".join(["---:"] * len(cols)) + "|"]
        for name, e in models.items():
            for m in shown:
                vals = []
                for c in cols:
                    if c == "clean":
                        vals.append(e.get(m))
                        continue
                    v = [e["noise"][n][c].get(m) for n in e.get("noise", {}) if c in e["noise"][n]]
                    v = [x for x in v if x is not None]
                    vals.append(float(np.mean(v)) if v else None)
                lines.append(f"| {name} | {m} | " + " | ".join(_fmt(v, m) for v in vals) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_error_vs_snr(summary: dict, out: str | os.PathLike) -> dict[str, Path]:
    """``error_vs_snr.png`` (mouth RMSE; one subplot per noise type, :data:`WRAP` per row, one
    block of rows per unit system (recipe) since 2018 and 2020 units differ, dashed: the
    mean-face baseline) and ``mouth_open_r_vs_snr.png`` (mouth-opening r, unit-free: all models
    together). x: SNR in dB, clean at the right end. Nothing without noise conditions."""
    from tf_talkface.viz.plots import pyplot, save_figure

    models = summary["models"]
    noises = sorted({n for e in models.values() for n in e.get("noise", {})})
    if not noises:
        return {}
    plt = pyplot()
    cols = list(reversed(_snr_columns(summary)))  # low SNR ... high SNR, clean
    x = np.arange(len(cols))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(models)}
    recipes = sorted({e["recipe"] for e in models.values()})
    out = Path(out)
    files = {}

    def series(e, noise, metric):
        vals = [e.get(metric) if c == "clean" else e["noise"].get(noise, {}).get(c, {}).get(metric)
                for c in cols]
        return np.array([np.nan if v is None else v for v in vals], float)

    # subplots: noise types wrapped 4 per row; mouth RMSE: one block of rows per unit system
    ncol = min(WRAP, len(noises))
    nrow = -(-len(noises) // ncol)

    def grid(blocks: int):
        fig, axes = plt.subplots(blocks * nrow, ncol, squeeze=False, layout="constrained",
                                 figsize=(3.1 * ncol + 0.7, 2.7 * blocks * nrow + 0.9))
        for k in range(nrow * ncol):
            for b in range(blocks):
                ax = axes[b * nrow + k // ncol, k % ncol]
                if k >= len(noises):
                    ax.set_visible(False)
                    continue
                ax.grid(alpha=0.3)
                ax.set_xticks(x)
                ax.set_xticklabels(cols, fontsize=8)
                ax.tick_params(axis="y", labelsize=8)
                ax.set_title(noises[k], fontsize=10)
                if b == blocks - 1 and k + ncol >= len(noises):
                    ax.set_xlabel("SNR (dB)", fontsize=9)
        return fig, axes

    fig, axes = grid(len(recipes))
    for b, recipe in enumerate(recipes):
        members = [(n, e) for n, e in models.items() if e["recipe"] == recipe]
        block = [axes[b * nrow + k // ncol, k % ncol] for k in range(len(noises))]
        for ax, noise in zip(block, noises):
            for name, e in members:
                ax.plot(x, series(e, noise, "mouth_rmse"), "o-", color=colors[name], label=name,
                        lw=1.6, ms=4)
            for mf in sorted({e["baselines"]["mean_face"]["mouth_rmse"] for _, e in members}):
                ax.axhline(mf, color="0.45", ls="--", lw=1, label="mean face")
        lo = min(a.get_ylim()[0] for a in block)
        hi = max(a.get_ylim()[1] for a in block)
        for k, a in enumerate(block):
            a.set_ylim(lo, hi)
            if k % ncol == 0:
                a.set_ylabel(f"mouth RMSE\n({recipe} units)", fontsize=9)
    _title_and_legend(fig, axes, "Mouth RMSE vs SNR per noise type (lower is better; dashed: "
                      "mean-face baseline; rows: unit systems)" if len(recipes) > 1 else
                      "Mouth RMSE vs SNR per noise type (lower is better; dashed: mean-face "
                      "baseline)")
    files["error_vs_snr"] = save_figure(fig, out / "error_vs_snr.png")

    # mouth-opening correlation: unit-free, all models together
    fig, axes = grid(1)
    block = [axes[k // ncol, k % ncol] for k in range(len(noises))]
    for k, (ax, noise) in enumerate(zip(block, noises)):
        for name, e in models.items():
            ax.plot(x, series(e, noise, "mouth_open_r"), "o-", color=colors[name], label=name,
                    lw=1.6, ms=4)
        ax.axhline(0, color="0.45", ls=":", lw=1)
        if k % ncol == 0:
            ax.set_ylabel("mouth-opening r", fontsize=9)
    lo = min(min(a.get_ylim()[0] for a in block), -0.05)
    hi = max(a.get_ylim()[1] for a in block)
    for a in block:
        a.set_ylim(lo, hi)
    _title_and_legend(fig, axes, "Mouth-opening correlation vs SNR per noise type (higher is "
                      "better)")
    files["mouth_open_r_vs_snr"] = save_figure(fig, out / "mouth_open_r_vs_snr.png")
    return files


def _title_and_legend(fig, axes, title: str) -> None:
    """Title above, one legend for all subplots below them (constrained layout places both)."""
    handles, labels = _legend_entries(axes)
    fig.suptitle(title, fontsize=11)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=9,
               frameon=False)


def _legend_entries(axes) -> tuple[list, list]:
    seen: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen.keys())


# --------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.evaluate",
        description="Landmark metrics of trained models on a prepared split, clean and with noise "
                    "at several SNRs (Eskimez et al. 2020's evaluation), beside mean-face and "
                    "shuffled-frames baselines. Writes per_clip.csv, summary.json, results.md and "
                    "error-vs-SNR plots.")
    p.add_argument("-m", "--model", action="append", required=True, metavar="[NAME=]PATH",
                   help="exported SavedModel saved_models/NAME[/VERSION], a training run folder or "
                        "a checkpoint NAME.json; repeat for several models")
    p.add_argument("--data", action="append", required=True, metavar="tfrecords/NAME[:split]",
                   help="prepared dataset (default split: test); each model uses the first of its "
                        "recipe; repeat for several")
    p.add_argument("--noise", metavar="DIR", help="folder of noise files (wav/flac/ogg/mp3)")
    p.add_argument("--snr", nargs="+", metavar="SNR",
                   help="conditions: 'clean' and/or SNRs in dB (default: clean; with --noise: "
                        "clean 20 10 5 0 -5)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: print the summary only)")
    p.add_argument("--seed", type=int, default=0, help="noise segments and shuffles (default 0)")
    p.add_argument("--max-clips", type=int, metavar="N", help="only the first N clips per dataset")
    p.add_argument("--batch", type=int, default=16, help="waveforms per SavedModel call (default 16)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tf_talkface.data.manifest import DatasetError

    if args.max_clips is not None and args.max_clips < 1:
        print("evaluate: error: --max-clips must be >= 1", file=sys.stderr)
        return 2
    if args.batch < 1 or args.seed < 0:
        print("evaluate: error: --batch must be >= 1 and --seed >= 0", file=sys.stderr)
        return 2
    try:
        summary = evaluate(args.model, args.data, args.noise, args.snr, args.out, args.seed,
                           args.max_clips, args.batch, progress=not args.quiet)
    except (EvaluateError, DatasetError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 1
    if args.out:
        print(Path(args.out, "results.md").read_text())
        print(f"written to {args.out}: per_clip.csv, summary.json, results.md"
              + (", error_vs_snr.png, mouth_open_r_vs_snr.png"
                 if any(e["noise"] for e in summary["models"].values()) else ""))
    else:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
