"""``python -m tf_talkface.train``: train a model on a prepared dataset under ``tf.distribute``.

Example (the 2018 LSTM with a 1-frame delay and 3 frames of context)::

    python -m tf_talkface.train --data tfrecords/grid_s1_2018 --model lstm --delay 1 --context 3 --out runs/lstm_d1_c3

The run folder holds ``config.json`` (all settings + the dataset manifest's hash),
``manifest.json`` (a copy of the dataset's), ``history.csv``, ``loss.png``, ``best.keras`` (best
validation loss), ``final.keras``, ``metrics.json`` (test-split metrics beside a mean-face
baseline), TensorBoard logs in ``tb/``, and ``backup/`` while training (``BackupAndRestore``: a
killed run resumes when restarted with the same command).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_talkface.console import os_error_message, quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

log = logging.getLogger("tf_talkface.train")

PAPER_DEFAULTS = {
    # Eskimez et al. 2018: Adam 1e-3, MSE, batch 128, 200 epochs, no early stopping (patience 0).
    "lstm": {"lr": 1e-3, "beta_1": 0.9, "loss": "mse", "epochs": 200, "patience": 0},
    # Eskimez et al. 2020: Adam 1e-4, betas (0.5, 0.999), L1, batch 128, early stopping 20.
    "cnn": {"lr": 1e-4, "beta_1": 0.5, "loss": "l1", "epochs": 200, "patience": 20},
    "cnn_tc": {"lr": 1e-4, "beta_1": 0.5, "loss": "l1", "epochs": 200, "patience": 20},
}


PRESETS = {
    # The papers' recipes (above): peak-normalised input, raw targets, the 2018 sigmoid read-out.
    "paper": {"level": "peak", "standardize": False, "readout": "lstm", "mouth_weight": 1.0,
              "gain_aug_db": 0.0, "compress_p": 0.0, "vtlp": 0.0, "lr_schedule": "constant",
              "crop_frames": 0, "velocity_weight": 0.0, "component_weights": "standardised"},
    # Issue 11 (our changes, for voices and recording levels never heard in training):
    # gated-RMS input level + level/compression augmentation (cnn), standardised targets with a
    # linear read-out, mouth-weighted loss, mel-axis VTLP (lstm), LR halved on plateaus, and
    # (cnn) random 32-frame windows of the clips: 2.3x more updates per CPU-minute.
    "robust": {"level": "loudness", "standardize": True, "readout": "linear", "mouth_weight": 2.0,
               "gain_aug_db": 6.0, "compress_p": 0.5, "vtlp": 0.2, "lr_schedule": "plateau",
               "crop_frames": 32, "velocity_weight": 0.0, "component_weights": "standardised"},
}
"""Recipe presets; any single setting can still be given on its own (it wins)."""

MOUTH_POINTS = range(48, 68)


class TrainError(ValueError):
    """Incompatible flags or unusable data (the message says which and why)."""


class TrainDiverged(TrainError):
    """The loss or the weights became NaN/Inf: the run is a failure and leaves no weights
    (``best.keras``/``final.keras`` removed) that ``export`` could pick up."""


def nonfinite_history(history: dict) -> str | None:
    """``"loss"`` (the first non-finite loss entry of the Keras history, with its epoch) or None."""
    for key, values in history.items():
        if "loss" not in key:
            continue
        for epoch, v in enumerate(values):
            if not np.isfinite(float(v)):
                return f"{key} = {float(v)} at epoch {epoch + 1}"
    return None


def nonfinite_weights(model) -> str | None:
    """The path of the first weight of ``model`` holding NaN/Inf, or None."""
    for v in model.weights:
        a = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            return v.path if hasattr(v, "path") else str(v.name)
    return None


@dataclass
class TrainConfig:
    """All settings of a training run (saved as ``config.json`` in the run folder).

    ``None`` fields take the paper's default for the model (:data:`PAPER_DEFAULTS`).
    ``batch_size`` is per replica; the global batch is ``batch_size * replicas``.
    """

    data: str
    model: str
    out: str
    noise: str | None = None
    delay: int = 0
    context: int = 0
    units: int = 256
    dropout: float = 0.2
    epochs: int | None = None
    batch_size: int = 128
    lr: float | None = None
    patience: int | None = None
    seed: int = 0
    strategy: str = "auto"
    mixed_precision: bool = False
    steps_per_epoch: int | None = None
    cache: bool = True
    w_clean: float = 1.0
    w_noisy: float = 1.0
    w_feat: float = 1e-3
    backup_every: int | None = None
    time_limit_min: float | None = None
    init_weights: str | None = None
    preset: str = "paper"
    level: str | None = None
    standardize: bool | None = None
    readout: str | None = None
    mouth_weight: float | None = None
    gain_aug_db: float | None = None
    compress_p: float | None = None
    vtlp: float | None = None
    lr_schedule: str | None = None
    crop_frames: int | None = None
    velocity_weight: float | None = None
    component_weights: str | None = None
    post_filter_frames: int = 0

    def resolved(self) -> "TrainConfig":
        d = PAPER_DEFAULTS.get(self.model)
        if d is None:
            raise TrainError(f"--model {self.model!r}: choose one of {', '.join(PAPER_DEFAULTS)}")
        if self.preset not in PRESETS:
            raise TrainError(f"--preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        p = PRESETS[self.preset]
        pick = lambda k: getattr(self, k) if getattr(self, k) is not None else p[k]  # noqa: E731
        return dataclasses.replace(
            self, epochs=self.epochs if self.epochs is not None else d["epochs"],
            lr=self.lr if self.lr is not None else d["lr"],
            patience=self.patience if self.patience is not None else d["patience"],
            **{k: pick(k) for k in p})

    @property
    def level_config(self):
        """The input :class:`~tf_talkface.audio.level.LevelConfig` (cnn models)."""
        from tf_talkface.audio.level import LevelConfig
        return LevelConfig(self.level or "peak")

    def check(self) -> None:
        """Raise :class:`TrainError` for flag combinations that make no sense."""
        if self.model != "lstm" and (self.delay or self.context):
            raise TrainError(f"--delay/--context belong to the lstm (2018) model; the {self.model} "
                             "model sees a fixed 7-frame window centred on each frame")
        if self.model == "lstm" and self.noise:
            raise TrainError("--noise (noise-resilient training) is defined for cnn and cnn_tc")
        if self.delay < 0 or self.context < 0:
            raise TrainError("--delay and --context must be >= 0")
        if self.batch_size < 1:
            raise TrainError("--batch-size must be >= 1")
        if self.strategy not in ("auto", "mirrored", "multiworker", "one_device"):
            raise TrainError(f"--strategy {self.strategy!r}: auto, mirrored, multiworker or one_device")
        if self.noise and not Path(self.noise).is_dir():
            raise TrainError(f"--noise {self.noise}: not a folder")
        if self.init_weights and not Path(self.init_weights).is_file():
            raise TrainError(f"--init-weights {self.init_weights}: no such file")
        if self.level not in (None, "peak", "loudness"):
            raise TrainError(f"--level {self.level!r}: peak or loudness")
        if self.readout not in (None, "lstm", "linear"):
            raise TrainError(f"--readout {self.readout!r}: lstm or linear")
        if self.lr_schedule not in (None, "constant", "plateau"):
            raise TrainError(f"--lr-schedule {self.lr_schedule!r}: constant or plateau")
        if self.model != "lstm" and self.gain_aug_db and self.level == "peak":
            raise TrainError("--gain-aug needs --level loudness (peak normalisation undoes a gain)")
        if self.component_weights not in (None, "standardised", "mouth"):
            raise TrainError(f"--component-weights {self.component_weights!r}: standardised or mouth")
        if self.post_filter_frames < 0 or (self.post_filter_frames and self.model != "cnn"):
            raise TrainError("--post-filter FRAMES (>= 0) belongs to the plain cnn model")
        if self.mixed_precision not in (False, True, "float16", "bfloat16"):
            raise TrainError(f"--mixed-precision {self.mixed_precision!r}: float16 or bfloat16")


def load_init_weights(net, path: str | os.PathLike) -> list[str]:
    """Start ``net`` (the prediction model) from trained weights: a run's ``best.keras`` /
    ``final.keras`` (a noise-resilient wrapper is unwrapped) or a checkpoint ``NAME.weights.h5``
    (with its ``NAME.json`` beside it). Only the weights are taken; the optimizer starts fresh.

    Layers are matched by name and weight shapes, so a model with another read-out (e.g. the
    paper's LSTM into ``readout="linear"``) takes the layers it shares; the others keep their
    initialisation (logged).

    Returns:
        names of the layers that were initialised.

    Raises:
        TrainError: unreadable file, or no layer in common (names the file).
    """
    import keras

    from tf_talkface.models.cnn import SpeechToLandmarkCNN
    from tf_talkface.models.registry import custom_objects

    path = Path(path)
    try:
        if path.suffix == ".keras":
            src = keras.saving.load_model(path, custom_objects=custom_objects(), compile=False)
            src = src.model if hasattr(src, "w_feat") else src
        else:
            meta = path.with_name(path.name.replace(".weights.h5", ".json"))
            if not meta.is_file():
                raise TrainError(f"--init-weights {path}: {meta.name} (the checkpoint's config) "
                                 "is not beside it")
            ck = json.loads(meta.read_text())
            cls = keras.Model if ck["train"]["model"] == "lstm" else SpeechToLandmarkCNN
            src = cls.from_config(ck["model_config"])
            src.load_weights(path)
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
        raise TrainError(f"--init-weights {path}: cannot read it ({e})") from None
    by_name = {l.name: l for l in src.layers}
    rescale = _standardised_readout(src, net)
    done, skipped = [], []
    for layer in net.layers:
        w = layer.get_weights()
        if not w:
            continue
        other = by_name.get(layer.name)
        ow = other.get_weights() if other is not None else None
        if ow is not None and [a.shape for a in ow] == [a.shape for a in w]:
            if layer.name in rescale:
                ow = rescale[layer.name](ow)
            layer.set_weights(ow)
            done.append(layer.name)
        else:
            skipped.append(layer.name)
    if not done:
        raise TrainError(f"--init-weights {path}: no layer in common with the {net.name} model")
    if skipped:
        log.info("--init-weights %s: initialised %s; new: %s", path.name, ", ".join(done),
                 ", ".join(skipped))
    return done


def _standardised_readout(src, net) -> dict:
    """When a CNN without target statistics initialises one with them: the source's last layer,
    rescaled so the new model starts with the source's outputs (``y = s * z`` with ``z`` the
    standardised output: kernel and bias divided by ``std``; LeakyReLU(x) / s = LeakyReLU(x / s)
    for s > 0). Returns ``{layer name: weights -> weights}``."""
    scale = getattr(net, "target_scale", None)
    if scale is None or getattr(src, "target_scale", None) is not None:
        return {}
    std = np.asarray(scale.std, np.float32)
    mean = np.asarray(scale.mean, np.float32)
    last = "tc_dense" if getattr(net, "tc_dense", None) is not None else "head"

    def fix(ws):
        k, b = ws
        return [k / std, (b - mean) / std]

    return {last: fix}


def get_strategy(name: str):
    """The ``tf.distribute`` strategy for ``--strategy``.

    ``auto``: ``MirroredStrategy`` over all GPUs when there are several, else the default
    (one device). ``mirrored``: ``MirroredStrategy`` over all visible GPUs, or over all logical
    CPU devices when there is no GPU (how it is tested on a CPU machine). ``multiworker``:
    ``MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``. ``one_device``: first GPU or
    the CPU.
    """
    import tensorflow as tf

    if name == "multiworker":  # before anything that starts TF's context (listing devices does)
        if "TF_CONFIG" not in os.environ:
            raise TrainError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def file_sha1(path: Path) -> str:
    """Hex SHA-1 of a file's bytes (the dataset manifest's, in a run's ``config.json``)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def write_run_config(out: Path, record: dict) -> None:
    """Write ``out/config.json`` (atomically). A restart must be the same run: an existing
    config whose ``train`` settings or ``manifest_sha1`` differ is refused.

    Raises:
        TrainError: ``out`` holds a different run.
    """
    from tf_talkface.data.manifest import write_json_atomic

    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if old.get("train") != record["train"] or old.get("manifest_sha1") != record["manifest_sha1"]:
            raise TrainError(f"{out} holds a different run (config.json differs); use another --out")
    write_json_atomic(cfg_path, record)


def previous_best(csv_path: Path, monitor: str) -> tuple[float | None, int]:
    """From a (resumed) run's ``history.csv``: the best ``monitor`` value so far and the number
    of epochs since it (what ModelCheckpoint/EarlyStopping would have held in memory)."""
    if not csv_path.is_file():
        return None, 0
    with open(csv_path) as f:
        vals = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor) not in (None, "")]
    if not vals:
        return None, 0
    i = int(np.argmin(vals))
    return vals[i], len(vals) - 1 - i


def resumable_early_stopping(monitor: str, patience: int, best: float | None, wait: int):
    """``EarlyStopping`` that starts from the best value and wait count of the epochs before a
    restart (Keras resets both on ``on_train_begin``; ``BackupAndRestore`` restores only weights,
    optimizer and epoch)."""
    import keras

    class _ES(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:
                self.best, self.wait = best, wait

    return _ES(monitor=monitor, patience=patience)


def time_limit(minutes: float):
    """Keras callback: stop training at the end of the first epoch that ends after ``minutes``
    of wall-clock time (the run then finishes normally: best checkpoint, metrics, plots)."""
    import keras

    class _TimeLimit(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            if time.time() - self.t0 > minutes * 60:
                log.info("time limit of %.1f min reached after epoch %d", minutes, epoch + 1)
                self.model.stop_training = True

    return _TimeLimit()


def chief_out(out: Path, strategy_name: str) -> Path:
    """Multi-worker runs: only the chief (task ``chief``, or ``worker`` 0 when there is no chief)
    writes the run folder; the other workers write ``out/workers/<type>-<index>`` (their own
    backups and logs, never the chief's files)."""
    if strategy_name != "multiworker":
        return out
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return out if is_chief else out / "workers" / f"{kind}-{index}"


def build_for(cfg: TrainConfig, manifest: dict):
    """Build and compile the Keras model for ``cfg`` (call inside ``strategy.scope()``).

    Returns (model to fit, the inner prediction model)."""
    import keras

    from tf_talkface.models.registry import build_model

    from tf_talkface.models.noise_resilient import DimWeightedLoss

    d = PAPER_DEFAULTS[cfg.model]
    opt = keras.optimizers.Adam(learning_rate=cfg.lr, beta_1=d["beta_1"], beta_2=0.999)
    stats = target_stats(cfg, manifest)
    scale = {} if stats is None else {"target_mean": stats[0].tolist(), "target_std": stats[1].tolist()}
    if cfg.model == "lstm":
        feat = manifest["schema"]["feature_dim"] * (cfg.context + 1)
        dim = manifest["schema"]["landmark_dim"]
        model = build_model("lstm", input_dim=feat, units=cfg.units, output_dim=dim,
                            dropout=cfg.dropout, recurrent_dropout=cfg.dropout,
                            readout=cfg.readout, **scale)
        # 1 / std^2: the MSE of the standardised targets (O(1), so Adam's epsilon stays small
        # against the gradients); the mouth weights are scaled to average 1
        mouth = mouth_dim_weights(dim, cfg.mouth_weight)
        w = (np.ones(dim) if stats is None else 1.0 / stats[1].astype(np.float64) ** 2) * mouth / mouth.mean()
        plain = stats is None and cfg.mouth_weight == 1.0 and not cfg.velocity_weight
        loss = (keras.losses.MeanSquaredError(reduction="mean_with_sample_weight") if plain
                else DimWeightedLoss("mse", w, velocity=cfg.velocity_weight or 0.0))
        model.compile(optimizer=opt, loss=loss,
                      weighted_metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
        return model, model
    if cfg.post_filter_frames:  # trained jointly; edge padding: a crop is a clip cut mid-speech
        scale.update(post_filter_frames=cfg.post_filter_frames, post_filter_padding="edge")
    net = build_model(cfg.model, n_out=manifest["schema"]["n_pca"], dropout=cfg.dropout, **scale)
    dims = net.loss_dim_weights
    if stats is not None and cfg.component_weights == "mouth":
        from tf_talkface.face.pca import PCABasis
        dims = pca_component_weights(PCABasis.load(cfg.data).components, stats[1], cfg.mouth_weight)
    if cfg.noise:
        from tf_talkface.models.noise_resilient import NoiseResilientModel
        nr = NoiseResilientModel(net, w_clean=cfg.w_clean, w_noisy=cfg.w_noisy, w_feat=cfg.w_feat,
                                 dim_weights=dims)
        nr.compile(optimizer=opt)
        return nr, net
    loss = (keras.losses.MeanAbsoluteError(reduction="mean_with_sample_weight")
            if stats is None else DimWeightedLoss("l1", dims))
    net.compile(optimizer=opt, loss=loss)
    return net, net


def mouth_dim_weights(dim: int, mouth_weight: float) -> np.ndarray:
    """(dim,) loss weights: ``mouth_weight`` on the coordinates of points 48-67 (flattened
    point-major, ``dim = 68 * D``), 1 elsewhere."""
    w = np.ones(dim)
    d = dim // 68
    for p in MOUTH_POINTS:
        w[p * d:(p + 1) * d] = mouth_weight
    return w


def pca_component_weights(components: np.ndarray, std: np.ndarray,
                          mouth_weight: float) -> np.ndarray:
    """(k,) float32 L1 weights of a cnn model's PCA outputs (in PCA units) for
    ``--component-weights mouth`` (issue 11; our change, not in the paper).

    Component ``i`` is weighted by the mouth-weighted length of the landmark displacement one
    unit of it causes, ``sqrt(sum_j m_j C_ij^2)`` (``m_j`` = ``mouth_weight`` on the coordinates
    of points 48-67, 1 elsewhere; ``C`` the (k, 68*D) orthonormal basis), so the L1 follows the
    mouth-weighted landmark error as the paper's raw-PCA L1 follows the landmark error, instead
    of weighting every standardised component the same (``standardised``, which gives the small,
    mostly non-speech components as much weight as the first, mouth-opening one). Scaled so
    that the weights on standardised values (``w * std``) average 1, the scale of the
    standardised L1.

    Args:
        components: (k, 68*D) principal axes; std: (k,) target std (PCA units, > 0).
    """
    c = np.asarray(components, np.float64)
    m = mouth_dim_weights(c.shape[1], mouth_weight)
    a = np.sqrt((c ** 2 * m).sum(1))
    return (a / np.mean(a * np.asarray(std, np.float64))).astype(np.float32)


def target_stats(cfg: TrainConfig, manifest: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Training-split mean and std of the targets (landmark coordinates for the lstm, PCA
    coefficients for cnn models) when ``cfg.standardize``, else ``None``.

    The std is floored at 10% of its median, so near-constant coordinates (the eye corners the
    2018 alignment pins) do not get huge weights. CNN targets are not centred (their LeakyReLU
    head keeps its sign; PCA codes of the training split have mean ~0 anyway).

    Raises:
        TrainError: the manifest lacks the statistics.
    """
    if not cfg.standardize:
        return None
    key = "landmarks" if cfg.model == "lstm" else "pca"
    try:
        st = manifest["feature_stats"][key]
        mean, std = np.asarray(st["mean"], np.float64), np.asarray(st["std"], np.float64)
    except KeyError:
        raise TrainError(f"{cfg.data}: manifest has no feature_stats.{key} (rebuild the dataset "
                         "with prepare, or train with --preset paper)") from None
    std = np.maximum(std, 0.1 * np.median(std))
    if cfg.model != "lstm":
        mean = np.zeros_like(mean)
    return mean.astype(np.float32), std.astype(np.float32)


def _fix_multiworker_symbolic_build(model) -> None:
    """Work around keras-team/keras#20585 (Keras 3 ``fit`` under MultiWorkerMirroredStrategy).


    ``Trainer._maybe_symbolic_build`` all-reduces the first data batch across workers in eager
    mode only to learn its shapes, and that cross-worker reduce of a ``PerReplica`` value fails.
    Building from this worker's local replica batch gives the same shapes without the reduce.
    Applied to multi-worker runs only.
    """
    import tensorflow as tf
    from keras import tree

    build = model._symbolic_build
    strategy = model.distribute_strategy

    def local(v):
        return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    _patch_multiworker_scalar_reduce()


def _patch_multiworker_scalar_reduce() -> None:
    """Second half of the keras-team/keras#20585 work-around: Keras' step function reduces the
    per-replica step logs with ``strategy.reduce("MEAN", v, axis=0)`` under multi-worker
    strategies, which fails for scalar metrics. Reduce scalars with ``axis=None`` (the mean over
    all replicas) and leave everything else to Keras. Idempotent; only used for multi-worker runs.

    Raises:
        TrainError: this Keras version lacks the function being wrapped.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tft

    orig = getattr(tft, "reduce_per_replica", None)
    if orig is None or not hasattr(tft, "_collective_all_reduce_multi_worker"):
        raise TrainError("--strategy multiworker: this Keras version changed its distributed "
                         "trainer; tf_talkface's work-around for keras-team/keras#20585 does not apply")
    if getattr(orig, "_tf_talkface", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tft._collective_all_reduce_multi_worker(strategy):
            def one(v):
                local = strategy.experimental_local_results(v)[0] if tft._is_per_replica_instance(v) else v
                return strategy.reduce("MEAN", v, axis=0 if local.shape.rank else None)
            return tree.map_structure(one, values)
        return orig(values, strategy, reduction)

    reduce_per_replica._tf_talkface = True
    tft.reduce_per_replica = reduce_per_replica


class LossCurve:
    """Keras callback factory: redraws ``loss.png`` from ``history.csv`` after every epoch."""

    @staticmethod
    def make(csv_path: Path, png_path: Path):
        import keras

        class _Cb(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                plot_history(csv_path, png_path)

        return _Cb()


def plot_history(csv_path: Path, png_path: Path, title: str = "") -> None:
    """Plot every ``*loss*`` column of a Keras ``CSVLogger`` file against the epoch (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not csv_path.is_file():
        return
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in rows[0]:
        if "loss" in key or key in ("l1_clean", "l1_noisy", "val_l1_clean", "val_l1_noisy"):
            vals = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            ax.plot(epochs, vals, label=key, ls="--" if key.startswith("val_") else "-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or csv_path.parent.name)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)


def predict_clip(net, cfg: TrainConfig, clip: dict, basis=None, init=None):
    """Predict one parsed clip with a trained prediction model.

    Returns (prediction, truth), each (frames, 68*D) float32 in the dataset's normalised units:
    2018: compared at the model's delayed alignment; 2020: PCA codes reconstructed with
    ``basis``; ``cnn_tc`` generates autoregressively from ``init`` (1, k), no teacher forcing.
    """
    from tf_talkface.audio.layers import stack_context
    from tf_talkface.data.pipeline import delay_targets

    if cfg.model == "lstm":
        x = stack_context(clip["features"], cfg.context)[None]
        return net(x, training=False)[0].numpy(), delay_targets(clip["landmarks"], cfg.delay).numpy()
    from tf_talkface.models.cnn import generate_tc, pad_and_scale_tf
    n = int(clip["num_frames"])
    w = pad_and_scale_tf(clip["audio"], n, level=cfg.level_config)[None]
    codes = generate_tc(net, w, init) if cfg.model == "cnn_tc" else net(w, training=False)
    return basis.reconstruct(codes[0, :n].numpy()).reshape(n, -1), clip["landmarks"].numpy()


def evaluate_split(net, cfg: TrainConfig, split: str = "test", max_clips: int | None = None) -> dict:
    """Test-split metrics of a trained prediction model beside the static mean-face baseline.

    Predictions come from :func:`predict_clip`. The mean face is the training split's mean
    landmark vector. Returns ``{"model": {...}, "mean_face": {...}, "n_clips", "n_frames"}``,
    metrics in the dataset's normalised units.
    """
    import tensorflow as tf

    from tf_talkface import metrics as M
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import initial_condition, read_clips

    manifest = load_manifest(cfg.data)
    mean_face = np.asarray(manifest["feature_stats"]["landmarks"]["mean"], np.float32)
    basis = init = None
    if cfg.model != "lstm":
        from tf_talkface.face.pca import PCABasis
        basis = PCABasis.load(cfg.data)
        init = tf.constant(initial_condition(cfg.data))[None]
    preds, trues = [], []
    for i, clip in enumerate(read_clips(cfg.data, split, manifest)):
        if max_clips and i >= max_clips:
            break
        p, t = predict_clip(net, cfg, clip, basis, init)
        preds.append(p)
        trues.append(t)
    if not preds:
        return {}

    def table(ps):
        cat_p, cat_t = np.concatenate(ps), np.concatenate(trues)
        return {"all_rmse": M.rmse(cat_p, cat_t), "mouth_rmse": M.mouth_rmse(cat_p, cat_t),
                "lmd": M.lmd(cat_p, cat_t),
                "mouth_open_r": float(np.nanmean([M.mouth_opening_correlation(p, t)
                                                  for p, t in zip(ps, trues)]))}

    return {"model": table(preds),
            "mean_face": table([np.broadcast_to(mean_face, t.shape) for t in trues]),
            "n_clips": len(preds), "n_frames": int(sum(len(t) for t in trues)),
            "units": "normalised landmark coordinates of the dataset (2018: /600 canvas; "
                     "2020: unit-norm Procrustes frame)"}


def train(cfg: TrainConfig, verbose: int | str = "auto") -> dict:
    """Train ``cfg.model`` on ``cfg.data``; library entry point of the CLI.

    Returns the metrics dict written to ``metrics.json``.

    Raises:
        TrainError: incompatible flags. DatasetError: missing/corrupt/mismatched data.
    """
    import keras
    import tensorflow as tf

    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import WindowConfig, check_dataset_for_model, make_dataset

    cfg = cfg.resolved()
    cfg.check()
    # First TF call of the run: MultiWorkerMirroredStrategy must configure collective ops
    # before the eager context starts.
    strategy = get_strategy(cfg.strategy)
    manifest = load_manifest(cfg.data)
    check_dataset_for_model(manifest, cfg.model, cfg.data)
    frames = [c.get("num_frames") for c in manifest.get("clips", []) if c.get("num_frames")]
    if cfg.delay and frames and cfg.delay >= min(frames):
        raise TrainError(f"--delay {cfg.delay} frames is not shorter than the shortest clip of "
                         f"{cfg.data} ({min(frames)} frames): its targets would all be padding")
    out = chief_out(Path(cfg.out), cfg.strategy)
    out.mkdir(parents=True, exist_ok=True)
    from tf_talkface.data.manifest import write_json_atomic

    write_run_config(out, {"train": dataclasses.asdict(cfg),
                           "manifest_sha1": file_sha1(Path(cfg.data) / "manifest.json"),
                           "recipe": manifest["recipe"], "schema": manifest["schema"]})
    shutil.copyfile(Path(cfg.data) / "manifest.json", out / "manifest.json")

    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if cfg.mixed_precision == "bfloat16" else "mixed_float16")
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    window = WindowConfig(cfg.delay, cfg.context)
    noise_bank = noise_val = None
    if cfg.noise:
        from tf_talkface.audio.noise import NoiseBank
        try:
            noise_bank = NoiseBank.from_dir(cfg.noise, manifest["schema"]["audio_sample_rate"])
        except (OSError, ValueError) as e:  # missing/empty folder, undecodable file (AudioError)
            raise TrainError(f"--noise {cfg.noise}: {e}") from None
        noise_val = noise_bank
    # Several replicas: only whole global batches (tf.distribute would hand a replica an empty,
    # zero-length padded batch otherwise); the validation batch shrinks to fit a small split.
    multi = replicas > 1
    n_train, n_val = manifest["counts"]["train"], manifest["counts"]["val"]
    if multi and n_train < global_batch and cfg.steps_per_epoch is None:
        raise TrainError(f"{cfg.data}: {n_train} training clips, fewer than the global batch "
                         f"{global_batch} ({cfg.batch_size} x {replicas} replicas)")
    from tf_talkface.data.pipeline import AugmentConfig
    lstm = cfg.model == "lstm"
    level = None if lstm else cfg.level_config
    augment = None if lstm else AugmentConfig(cfg.gain_aug_db, cfg.compress_p)
    train_ds = make_dataset(cfg.data, "train", cfg.model, global_batch, window, noise_bank,
                            shuffle=True, seed=cfg.seed, cache=cfg.cache,
                            repeat=cfg.steps_per_epoch is not None, drop_remainder=multi,
                            level=level, augment=augment, vtlp=cfg.vtlp if lstm else 0.0,
                            crop_frames=0 if lstm else cfg.crop_frames)
    val_batch = replicas * max(1, min(cfg.batch_size, n_val // replicas)) if multi else global_batch
    has_val = n_val >= (replicas if multi else 1)
    val_ds = make_dataset(cfg.data, "val", cfg.model, val_batch, window, noise_val,
                          shuffle=False, seed=cfg.seed + 1, cache=cfg.cache,
                          drop_remainder=multi, level=level) if has_val else None
    with strategy.scope():
        fit_model, net = build_for(cfg, manifest)
        if cfg.init_weights and not (out / "backup").exists():  # a resumed run restores its own
            load_init_weights(net, cfg.init_weights)
    if cfg.strategy == "multiworker":
        _fix_multiworker_symbolic_build(fit_model)
    monitor = "val_loss" if has_val else "loss"
    csv_path = out / "history.csv"
    best, wait = previous_best(csv_path, monitor)  # a resumed run keeps its best so far
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), save_freq=cfg.backup_every or "epoch",
                                         delete_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(out / "best.keras"), monitor=monitor, save_best_only=True,
                                        initial_value_threshold=best),
        keras.callbacks.CSVLogger(str(csv_path), append=True),
        keras.callbacks.TensorBoard(str(out / "tb"), write_graph=False),
        LossCurve.make(csv_path, out / "loss.png"),
    ]
    if cfg.patience:
        callbacks.insert(3, resumable_early_stopping(monitor, cfg.patience, best, wait))
    if cfg.time_limit_min:
        callbacks.append(time_limit(cfg.time_limit_min))
    if cfg.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=4,
                                                           min_lr=cfg.lr / 32))
    t0 = time.time()
    try:
        hist = fit_model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs,
                             steps_per_epoch=cfg.steps_per_epoch, callbacks=callbacks, verbose=verbose)
    except tf.errors.DataLossError as e:
        from tf_talkface.data.manifest import DatasetError, find_corrupt_shards
        bad = find_corrupt_shards(cfg.data, manifest)
        raise DatasetError(f"{cfg.data}: corrupt TFRecord shard(s): {', '.join(bad) or '(not found on re-read)'}"
                           f" — rebuild the dataset with python -m tf_talkface.prepare") from e
    seconds = time.time() - t0
    best_path = out / "best.keras"
    bad = nonfinite_history(hist.history)
    bad_weight = None if bad else nonfinite_weights(fit_model)
    if bad or bad_weight:
        # NaN/Inf anywhere: no weights an export could take for a trained model
        for f in (best_path, out / "final.keras"):
            f.unlink(missing_ok=True)
        shutil.rmtree(out / "backup", ignore_errors=True)
        what = bad or f"non-finite weights in {bad_weight}"
        raise TrainDiverged(f"{out}: training diverged ({what}); no weights were kept. Check the "
                            f"dataset {cfg.data} for NaN/Inf values, or lower --lr")
    fit_model.save(out / "final.keras")
    if best_path.is_file():
        from tf_talkface.models.registry import custom_objects
        best = keras.saving.load_model(best_path, custom_objects=custom_objects())
        net = best.model if hasattr(best, "w_feat") else best
    results = {"history_last": {k: float(v[-1]) for k, v in hist.history.items()},
               "epochs_run": len(hist.history.get("loss", [])), "train_seconds": round(seconds, 1),
               "replicas": replicas, "global_batch": global_batch}
    if manifest["counts"]["test"] > 0:
        results["test"] = evaluate_split(net, cfg, "test")
    write_json_atomic(out / "metrics.json", results)
    plot_history(csv_path, out / "loss.png")
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tf_talkface.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="tfrecords/grid_s1_2018", help="prepared dataset folder")
    p.add_argument("--model", choices=sorted(PAPER_DEFAULTS), default="lstm")
    p.add_argument("--out", help="run folder (default: runs/<model>_d<delay>_c<context>)")
    p.add_argument("--noise", help="noise folder: noise-resilient training (cnn, cnn_tc)")
    p.add_argument("--delay", type=int, default=0, help="lstm: target delay in frames (40 ms)")
    p.add_argument("--context", type=int, default=0, help="lstm: previous frames of context")
    p.add_argument("--units", type=int, default=256, help="lstm: units of the first 3 layers")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout (and LSTM recurrent dropout)")
    p.add_argument("--epochs", type=int, help="default: 200 (papers)")
    p.add_argument("--batch-size", type=int, default=128, help="per replica")
    p.add_argument("--lr", type=float, help="default: 1e-3 (lstm) / 1e-4 (cnn)")
    p.add_argument("--patience", type=int, help="early stopping patience in epochs, 0 = off "
                                                "(default: 0 for lstm, 20 for cnn/cnn_tc, as the papers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", default="auto", choices=("auto", "mirrored", "multiworker", "one_device"))
    p.add_argument("--mixed-precision", nargs="?", const="float16", default=False,
                   choices=("float16", "bfloat16"),
                   help="mixed precision: float16 (GPUs; the default when given alone) or bfloat16 "
                        "(CPUs with AVX-512 BF16)")
    p.add_argument("--steps-per-epoch", type=int, help="repeat the data and cut epochs at N steps")
    p.add_argument("--no-cache", action="store_true", help="do not cache parsed clips in memory")
    p.add_argument("--w-clean", type=float, default=1.0)
    p.add_argument("--w-noisy", type=float, default=1.0)
    p.add_argument("--w-feat", type=float, default=1e-3)
    p.add_argument("--backup-every", type=int, help="BackupAndRestore every N steps (default: each epoch)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after the epoch that ends past MIN minutes of training")
    p.add_argument("--init-weights", metavar="FILE",
                   help="start from trained weights (runs/NAME/best.keras or a NAME.weights.h5)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="robust",
                   help="robust (default: issue 11's recipe) or paper (the papers' settings); "
                        "the flags below override single settings of the preset")
    p.add_argument("--level", choices=("peak", "loudness"), help="cnn input level normalisation")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardised targets (training-split statistics, a fixed read-out scale)")
    p.add_argument("--readout", choices=("lstm", "linear"), help="lstm: last layer")
    p.add_argument("--mouth-weight", type=float, help="loss weight of mouth coordinates (lstm; "
                   "cnn with --component-weights mouth)")
    p.add_argument("--component-weights", choices=("standardised", "mouth"),
                   help="cnn: L1 weight per PCA component: equal on standardised values (robust "
                   "preset) or by the mouth-weighted landmark displacement each causes")
    p.add_argument("--velocity-weight", type=float,
                   help="lstm: weight of the same loss on frame-to-frame differences (0 = off)")
    p.add_argument("--gain-aug", dest="gain_aug_db", type=float, metavar="DB",
                   help="cnn: random level offset +-DB after loudness normalisation")
    p.add_argument("--compress-aug", dest="compress_p", type=float, metavar="P",
                   help="cnn: probability of random dynamic range compression")
    p.add_argument("--vtlp", type=float, help="lstm: mel-axis warp range (0.2 = factors 0.83-1.2)")
    p.add_argument("--lr-schedule", choices=("constant", "plateau"))
    p.add_argument("--crop", dest="crop_frames", type=int, metavar="FRAMES",
                   help="cnn: train on random windows of FRAMES frames (0 = whole clips)")
    p.add_argument("--post-filter", dest="post_filter_frames", type=int, default=0, metavar="FRAMES",
                   help="cnn: end the network in a linear filter over +-FRAMES frames of its output "
                        "(edge padding), trained with it; --init-weights of a post-filter "
                        "checkpoint starts it from the fitted filter, otherwise from the identity")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: exit 0 on success, 2 on bad flags or data, 1 when training diverged
    (NaN/Inf) or the run folder cannot be written."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or f"runs/{args.model}_d{args.delay}_c{args.context}"
    cfg = TrainConfig(data=args.data, model=args.model, out=out, noise=args.noise, delay=args.delay,
                      context=args.context, units=args.units, dropout=args.dropout, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
                      strategy=args.strategy, mixed_precision=args.mixed_precision,
                      steps_per_epoch=args.steps_per_epoch, cache=not args.no_cache,
                      w_clean=args.w_clean, w_noisy=args.w_noisy, w_feat=args.w_feat,
                      backup_every=args.backup_every, time_limit_min=args.time_limit,
                      init_weights=args.init_weights, preset=args.preset, level=args.level,
                      standardize=args.standardize, readout=args.readout,
                      mouth_weight=args.mouth_weight, velocity_weight=args.velocity_weight,
                      gain_aug_db=args.gain_aug_db,
                      compress_p=args.compress_p, vtlp=args.vtlp, lr_schedule=args.lr_schedule,
                      crop_frames=args.crop_frames, component_weights=args.component_weights,
                      post_filter_frames=args.post_filter_frames)
    from tf_talkface.data.manifest import DatasetError
    try:
        results = train(cfg, verbose=0 if args.quiet else "auto")
    except TrainDiverged as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # read-only or full disk, permissions: one line naming the path
        print(f"train: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except (TrainError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(results.get("test", results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
