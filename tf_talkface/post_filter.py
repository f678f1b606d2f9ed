"""The landmark models' temporal post-filter: fit, attach, save (issue 11; our change).

``python -m tf_talkface.post_filter --model saved_models/checkpoints/cnn_nr_voices5.json
--data tfrecords/grid_s1_2020 --frames 16 --out saved_models/checkpoints/NAME.json``
``python -m tf_talkface.post_filter --model saved_models/checkpoints/lstm_voices.json
--data tfrecords/grid_s1_2018 --frames 4 --components 10 --out runs/NAME.json``

Why: the 2020 CNN predicts each frame's PCA coefficients from a 280-ms window of audio, so its
frames do not see the syllables around them, and its output is a shrunken, delayed-looking
copy of the motion. Measured (session 8, on the bundled default ``cnn_nr_voices5``): a linear
filter over +-16 frames of the network's own output, fitted by least squares on the
*training split* (the network frozen), raised the mouth-opening r on s1's validation clips from
0.74 to 0.81 and on the held-out speakers of grid/misc from 0.57 to 0.63, and lowered the
mouth RMSE on both (misc: 0.00367 -> 0.00347, the mean face being 0.00368). +-8 frames gave
about half of that, a causal filter (past frames only) a third.

The filter is a :class:`~tf_talkface.models.layers.TemporalFilter` (``Conv1D`` over frames in
PCA units; each clip continued beyond its ends by its first/last frame, ``--padding edge``, or
by zeros = the neutral face, the session-8 filters) at the end of
:class:`~tf_talkface.models.cnn.SpeechToLandmarkCNN` (``post_filter_frames``), so the
checkpoint, export, the SavedModel graph and evaluation carry it with no extra step; the
streamers delay each frame by ``K`` x 40 ms and stay equal to offline.

Fit: ridge regression from the (T, (2K+1) k) stacked network outputs (padded as the layer
pads) plus a constant to the (T, k) PCA coefficients of the clip's true landmarks,
over every frame of the split; ``ridge`` is relative to the mean squared input (scale-free).

The 2018 LSTM (:func:`fit_output_filter`) predicts 136 coordinates, not PCA coefficients: its
filter is fitted the same way in a PCA of the training split's true landmarks (``--components``,
the rest of each frame passes unchanged), on the **validation** split by default (the LSTM
over-fits its training clips), and stored folded into one edge-padded filter over the 136
outputs (``NAME.post_filter.npz`` beside the checkpoint; ``TrainedModel.output_filter``),
applied after the frame delay is undone, in the Python path, the SavedModel and both streamers.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class PostFilterError(ValueError):
    """An unusable model or dataset for the post-filter (the message says which and why)."""


def stack_frames(codes: np.ndarray, frames: int, padding: str = "edge") -> np.ndarray:
    """(T, k) -> (T, (2K+1) k + 1): rows ``[x_{t-K}, ..., x_{t+K}, 1]``, the clip continued
    beyond its ends by ``padding`` as :class:`~tf_talkface.models.layers.TemporalFilter` does
    (``"edge"``: its first/last frame repeated; ``"zeros"``). float64."""
    from tf_talkface.models.layers import pad_frames

    x = np.asarray(codes, np.float64)
    t = len(x)
    padded = pad_frames(x, frames, padding)
    return np.concatenate([padded[i:i + t] for i in range(2 * frames + 1)] + [np.ones((t, 1))], 1)


def solve_filter(raw: list[np.ndarray], true: list[np.ndarray], frames: int,
                 ridge: float = 1e-3, padding: str = "edge") -> tuple[np.ndarray, np.ndarray]:
    """Least-squares filter from network outputs to true coefficients.

    Args:
        raw, true: per clip (T_i, k) float arrays of equal lengths (network output, truth).
        frames: K >= 1. ridge: Tikhonov weight relative to the mean squared input (>= 0).
        padding: how each clip continues beyond its ends (:func:`stack_frames`).

    Returns:
        ``(kernel (2K+1, k, k), bias (k,))`` float32, the weights of a ``TemporalFilter``.

    Raises:
        PostFilterError: no frames, mismatched lengths or widths, or a non-finite solution.
    """
    if frames < 1:
        raise PostFilterError(f"frames must be >= 1, got {frames}")
    if not raw or len(raw) != len(true) or any(len(a) != len(b) for a, b in zip(raw, true)):
        raise PostFilterError("need one truth per prediction, of the same length, and >= 1 clip")
    k = raw[0].shape[1]
    xtx = np.zeros(((2 * frames + 1) * k + 1,) * 2)
    xty = np.zeros(((2 * frames + 1) * k + 1, k))
    for a, b in zip(raw, true):
        x = stack_frames(a, frames, padding)
        xtx += x.T @ x
        xty += x.T @ np.asarray(b, np.float64)
    reg = ridge * np.trace(xtx[:-1, :-1]) / (xtx.shape[0] - 1) * np.eye(xtx.shape[0])
    reg[-1, -1] = 0.0  # the bias is not shrunk
    w = np.linalg.solve(xtx + reg, xty)
    if not np.all(np.isfinite(w)):
        raise PostFilterError("the least-squares solution is not finite (degenerate data)")
    kernel = w[:-1].reshape(2 * frames + 1, k, k).astype(np.float32)
    return kernel, w[-1].astype(np.float32)


def clip_codes(model: Any, clip: dict) -> tuple[np.ndarray, np.ndarray]:
    """The network's PCA coefficients (T, k) for one stored clip (whole clip, the model's own
    input level, as :func:`~tf_talkface.export.python_path_predict`) and the truth's (T, k),
    cut to the same length."""
    from tf_talkface.export import python_path_predict

    lm = python_path_predict(model, np.asarray(clip["audio"]))
    truth = np.asarray(clip["landmarks"]).reshape(-1, 136)
    n = min(len(lm), len(truth))
    return model.basis.project(lm[:n].reshape(n, -1)), model.basis.project(truth[:n])


def with_post_filter(model: Any, kernel: np.ndarray, bias: np.ndarray,
                     padding: str = "edge") -> Any:
    """A copy of a plain-CNN :class:`~tf_talkface.export.TrainedModel` whose network ends in a
    ``TemporalFilter`` with these weights (``K = (len(kernel) - 1) / 2``) and ``padding``.

    Raises:
        PostFilterError: not a plain CNN, it already has a post-filter, or shapes disagree.
    """
    import dataclasses

    from tf_talkface.models.cnn import SpeechToLandmarkCNN

    net = model.net
    if model.kind != "cnn":
        raise PostFilterError(f"a post-filter needs a plain cnn model, not {model.kind!r}")
    if getattr(net, "post_filter", None) is not None:
        raise PostFilterError(f"{model.source}: the model already has a post-filter")
    taps, k, k2 = np.shape(kernel)
    if taps % 2 != 1 or k != k2 or k != net.n_out or np.shape(bias) != (k,):
        raise PostFilterError(f"kernel {np.shape(kernel)} / bias {np.shape(bias)} do not fit a "
                              f"{net.n_out}-output model")
    config = copy.deepcopy(net.get_config())
    if isinstance(config.get("dtype"), dict):  # trained under mixed precision: serve float32
        config["dtype"] = "float32"
    config["post_filter_frames"] = (taps - 1) // 2
    config["post_filter_padding"] = padding
    new = SpeechToLandmarkCNN.from_config(config)
    for layer in net.layers:  # every layer of the source keeps its weights
        new.get_layer(layer.name).set_weights(layer.get_weights())
    new.post_filter.kernel.assign(np.asarray(kernel, np.float32))
    new.post_filter.bias.assign(np.asarray(bias, np.float32))
    return dataclasses.replace(model, net=new)


def _noisy_copy(y: np.ndarray, noises: list[np.ndarray], snrs: tuple, rng) -> np.ndarray:
    """``y`` mixed with a random segment of a random noise at a random SNR of ``snrs`` (dB)."""
    from tf_talkface.audio.noise import mix_at_snr, noise_segment

    noise = noises[int(rng.integers(len(noises)))]
    snr = float(snrs[int(rng.integers(len(snrs)))])
    start = int(rng.integers(max(1, len(noise) - len(y))))
    return mix_at_snr(y, noise_segment(noise, len(y), start), snr)


def _noises(noise: str | Path | None, sample_rate: int) -> list[np.ndarray]:
    """The noise folder's waveforms at ``sample_rate`` (none without a folder)."""
    if noise is None:
        return []
    from tf_talkface.audio.noise import NoiseBank

    try:
        bank = NoiseBank.from_dir(noise, sample_rate, decoder="ffmpeg")
    except (FileNotFoundError, ValueError) as e:
        raise PostFilterError(f"--noise {noise}: {e}") from None
    return [bank.waveform(i) for i in range(bank.num_files)]


def _collect(data: Path, split: str, pair: Any, max_clips: int | None, noises: list,
             snrs: tuple, seed: int, progress: bool) -> tuple[list, list]:
    """``pair(audio, clip) -> (prediction (T, k), truth (T, k))`` for every clip of the split
    (the first ``max_clips``), and with ``noises`` once more on a noisy copy of its audio."""
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import read_clips

    total = load_manifest(data).get("counts", {}).get(split)
    rng = np.random.default_rng(seed)
    raw, true = [], []
    for i, clip in enumerate(read_clips(data, split).as_numpy_iterator()):
        if max_clips is not None and i >= max_clips:
            break
        audio = np.asarray(clip["audio"], np.float32)
        for y in [audio] + ([_noisy_copy(audio, noises, snrs, rng)] if noises else []):
            a, b = pair(y, clip)
            raw.append(a)
            true.append(b)
        if progress and (i + 1) % 50 == 0:
            print(f"post-filter: {i + 1}/{total or '?'} clips predicted", file=sys.stderr, flush=True)
    if not raw:
        raise PostFilterError(f"{data}: no {split} clips")
    return raw, true


def _fit_record(raw: list, true: list, kernel: np.ndarray, bias: np.ndarray, frames: int,
                ridge: float, padding: str, data: Path, split: str, noise: Any, snrs: tuple,
                seed: int, n_noises: int, t0: float) -> dict:
    """What a fit used, and per-component R^2 on the fitted split before and after."""
    from tf_talkface.models.layers import filter_sequence
    from tf_talkface.train import file_sha1

    def r2(pred):
        p, t = np.concatenate(pred).astype(np.float64), np.concatenate(true).astype(np.float64)
        return [round(float(v), 4) for v in 1 - ((p - t) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)]

    filtered = [filter_sequence(a, kernel, bias, padding) for a in raw]
    return {"frames": int(frames), "ridge": float(ridge), "padding": padding,
            "data": str(data), "split": split,
            "noise": None if noise is None else {"folder": str(noise), "snr_db": list(snrs),
                                                "seed": int(seed), "files": n_noises},
            "manifest_sha1": file_sha1(data / "manifest.json"),
            "clips": len(raw) // (2 if n_noises else 1), "n_frames": int(sum(len(a) for a in raw)),
            "r2_before": r2(raw), "r2_after": r2(filtered), "seconds": round(time.time() - t0, 1)}


def fit_post_filter(model: Any, data: str | Path, frames: int = 16, ridge: float = 1e-3,
                    split: str = "train", max_clips: int | None = None,
                    progress: bool = True, noise: str | Path | None = None,
                    snrs: tuple = (20.0, 10.0, 5.0, 0.0), seed: int = 0,
                    padding: str = "edge") -> tuple[Any, dict]:
    """Fit the post-filter of a plain-CNN model on one split of its dataset.

    Args:
        model: a ``cnn`` :class:`~tf_talkface.export.TrainedModel` without a post-filter
            (an ``lstm``: :func:`fit_output_filter`).
        data: a prepared eskimez2020 dataset whose PCA basis is the model's (fit on ``train``:
            the split the network learned; never on held-out speakers).
        frames: K (frames at 25 fps each side). ridge: see :func:`solve_filter`.
        max_clips: use only the first N clips of the split (tests).
        noise: a folder of noise files: every clip also enters the fit once mixed with a random
            segment of a random noise at a random SNR of ``snrs`` (dB; 2020 paper mixing), so
            the filter is fitted on what the network gives in noise too, not only on clean
            speech (where a filter fitted on clean outputs alone amplifies noise-driven errors).
        seed: the noise draws.
        padding: how the filter continues a clip beyond its ends (``"edge"``: its first/last
            frame repeated, the default since session 9, measured better than ``"zeros"`` on
            clips cut mid-speech; ``"zeros"``: the neutral face, as the session-8 filters).

    Returns:
        ``(filtered model, record)``; ``record`` (JSON-able) says what was fitted on and the
        split's fit: per-component R^2 of the network's output before and after the filter.

    Raises:
        PostFilterError: wrong model kind, a dataset of another basis, or no clips.
    """
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.face.pca import PCABasis

    if model.kind != "cnn":
        raise PostFilterError(f"a post-filter needs a plain cnn model, not {model.kind!r}")
    data = Path(data)
    load_manifest(data)  # a clear DatasetError for a folder that is not a dataset
    basis = PCABasis.load(data)
    if (basis.components.shape != model.basis.components.shape
            or not np.allclose(basis.components, model.basis.components, atol=1e-6)):
        raise PostFilterError(f"{data}: its PCA basis is not the model's (fit the filter on the "
                              "dataset the model was trained on)")
    noises = _noises(noise, model.sample_rate)
    t0 = time.time()
    raw, true = _collect(data, split, lambda y, clip: clip_codes(model, dict(clip, audio=y)),
                         max_clips, noises, snrs, seed, progress)
    kernel, bias = solve_filter(raw, true, frames, ridge, padding)
    record = _fit_record(raw, true, kernel, bias, frames, ridge, padding, data, split, noise,
                         snrs, seed, len(noises), t0)
    record["note"] = ("linear filter over +-frames of the network's PCA output, least squares on "
                      "the split with the network frozen (tf_talkface.post_filter)")
    return with_post_filter(model, kernel, bias, padding), record


def lstm_predictor(model: Any) -> Any:
    """``predict(waveform (samples,) at 44.1 kHz) -> (frames, 136)`` float32: the LSTM's output
    with the delay undone, before any post-filter. The numpy front-end of
    :func:`~tf_talkface.export.python_path_predict` and the network as
    :class:`~tf_talkface.models.lstm.StackedLSTMInference` in one traced function (the Keras
    LSTM called eagerly costs ~1 s per 3-s clip; this a few ms)."""
    import tensorflow as tf

    from tf_talkface.audio.features import add_context, logmel_delta_features
    from tf_talkface.config import LogMelConfig
    from tf_talkface.data.pipeline import undelay
    from tf_talkface.models.lstm import StackedLSTMInference

    stack = StackedLSTMInference(model.net)
    run = tf.function(stack, input_signature=[tf.TensorSpec([1, None, stack.input_dim], tf.float32)],
                      autograph=False)

    def predict(y: np.ndarray) -> np.ndarray:
        x = add_context(logmel_delta_features(np.asarray(y, np.float32), LogMelConfig()),
                        model.context)[None].astype(np.float32)
        return undelay(run(x).numpy()[0], model.delay).astype(np.float32)

    return predict


def landmark_pca(data: str | Path, components: int, split: str = "train"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (136,), components (k, 136))`` float64: the PCA of the true landmarks of one
    split (every frame; the training split by default: never held-out speakers).

    Raises:
        PostFilterError: fewer frames than components, or ``components`` not in 1..136.
    """
    from tf_talkface.data.pipeline import read_clips

    truth = [np.asarray(c["landmarks"], np.float64).reshape(-1, 136)
             for c in read_clips(data, split).as_numpy_iterator()]
    truth = np.concatenate(truth) if truth else np.zeros((0, 136))
    if not 1 <= components <= min(136, len(truth)):
        raise PostFilterError(f"{data}: cannot take {components} components from "
                              f"{len(truth)} {split} frames")
    mean = truth.mean(0)
    _, _, vt = np.linalg.svd(truth - mean, full_matrices=False)
    return mean, vt[:components]


def fit_output_filter(model: Any, data: str | Path, frames: int = 4, components: int = 10,
                      ridge: float = 1e-2, split: str = "val", max_clips: int | None = None,
                      progress: bool = True, noise: str | Path | None = None,
                      snrs: tuple = (20.0, 10.0, 5.0, 0.0), seed: int = 0) -> tuple[Any, dict]:
    """Fit the 2018 LSTM's post-filter (issue 11; our change) on one split of its dataset.

    The LSTM predicts 136 coordinates, so the filter works in a PCA of the training split's
    true landmarks (``components``): each frame's coefficients are replaced by a linear
    function of the coefficients of +-``frames`` frames of the prediction (edge padding), the
    rest of the prediction passes unchanged, and the whole is folded into one
    ``TemporalFilter`` over the 136 outputs (:func:`~tf_talkface.models.layers.fold_pca_filter`).

    Why the **validation** split by default: the LSTM over-fits its training clips (its
    outputs there are better than anywhere new), so a filter fitted on them learns too little
    gain. The defaults (+-4 frames, 10 components, ridge 1e-2) gave the best r on held-back
    validation clips of ``lstm_grid_s1/3`` (session 10, ``docs/results/voices/README.md``):
    refitted on all of validation, r rose on new GRID speakers 0.60 -> 0.63 and on s1 test
    0.786 -> 0.799, but the mouth RMSE did not fall (0.991x -> 0.999x the mean face on new
    speakers), so the bundled LSTM has no filter.

    Args:
        model: an ``lstm`` :class:`~tf_talkface.export.TrainedModel` without a post-filter.
        data: its prepared eskimez2018 dataset. frames: K >= 1. components: PCA size (1..136).
        ridge, split, max_clips, noise, snrs, seed: as :func:`fit_post_filter`.

    Returns:
        ``(model with output_filter, record)`` as :func:`fit_post_filter` (R^2 in the PCA).

    Raises:
        PostFilterError: not an LSTM, it already has a post-filter, a dataset of another
            recipe, or no clips.
    """
    import dataclasses

    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.export import output_filter_layer
    from tf_talkface.models.layers import fold_pca_filter

    if model.kind != "lstm":
        raise PostFilterError(f"fit_output_filter needs an lstm model, not {model.kind!r}")
    if model.output_filter is not None:
        raise PostFilterError(f"{model.source}: the model already has a post-filter")
    data = Path(data)
    recipe = load_manifest(data)["recipe"]["name"]
    if recipe != "eskimez2018":
        raise PostFilterError(f"{data}: an {recipe} dataset; the LSTM's is eskimez2018")
    mean, comps = landmark_pca(data, components)
    predict = lstm_predictor(model)

    def pair(y, clip):
        p = predict(y)
        t = np.asarray(clip["landmarks"], np.float64).reshape(-1, 136)
        n = min(len(p), len(t))
        return (p[:n] - mean) @ comps.T, (t[:n] - mean) @ comps.T

    noises = _noises(noise, model.sample_rate)
    t0 = time.time()
    raw, true = _collect(data, split, pair, max_clips, noises, snrs, seed, progress)
    kernel, bias = solve_filter(raw, true, frames, ridge, "edge")
    record = _fit_record(raw, true, kernel, bias, frames, ridge, "edge", data, split, noise,
                         snrs, seed, len(noises), t0)
    record.update(components=int(components), note=(
        "linear filter over +-frames of the LSTM's landmarks in a PCA of the training split's "
        "true landmarks (the rest passes unchanged), least squares on the split with the "
        "network frozen (tf_talkface.post_filter.fit_output_filter)"))
    layer = output_filter_layer(*fold_pca_filter(mean, comps, kernel, bias))
    return dataclasses.replace(model, output_filter=layer), record


def save_checkpoint(model: Any, source: str | Path, record: dict, out: str | Path) -> Path:
    """Write ``out`` (``NAME.json``) + ``NAME.weights.h5`` beside it, and ``NAME.basis.json``
    (CNN) or ``NAME.post_filter.npz`` (LSTM: the folded filter's kernel and bias,
    :data:`~tf_talkface.export.OUTPUT_FILTER_SUFFIX`): the source checkpoint's record with the
    new ``model_config`` and a ``post_filter`` entry (its test metrics dropped: they were the
    unfiltered network's). Files are written to temporary names and renamed, the JSON last.

    Raises:
        PostFilterError: ``source`` is not a checkpoint ``NAME.json``.
    """
    from tf_talkface.atomic import atomic_output

    source, out = Path(source), Path(out)
    if not (source.is_file() and source.suffix == ".json"):
        raise PostFilterError(f"{source}: the source must be a checkpoint NAME.json")
    if out.suffix != ".json":
        raise PostFilterError(f"{out}: the output must be a checkpoint NAME.json")
    ck = json.loads(source.read_text())
    if model.kind != "lstm":  # the LSTM's network is unchanged (its filter is beside it)
        ck["model_config"] = model.net.get_config()
    ck.pop("test", None)
    ck["post_filter"] = dict(record, source=str(source))
    weights = out.with_name(out.stem + ".weights.h5")
    with atomic_output(weights, suffix=".tmp.weights.h5") as tmp:
        model.net.save_weights(tmp)
    if model.output_filter is not None:
        from tf_talkface.export import OUTPUT_FILTER_SUFFIX

        with atomic_output(out.with_name(out.stem + OUTPUT_FILTER_SUFFIX), ".tmp.npz") as tmp:
            np.savez(tmp, kernel=np.asarray(model.output_filter.kernel, np.float32),
                     bias=np.asarray(model.output_filter.bias, np.float32))
    if model.basis is not None:
        with atomic_output(out.with_name(out.stem + ".basis.json")) as tmp:
            model.basis.save(tmp)
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(ck, indent=1))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tf_talkface.post_filter",
                                description="Fit a landmark model's temporal post-filter (plain "
                                            "cnn: on the training split; lstm: on validation) "
                                            "and write a new checkpoint.")
    p.add_argument("--model", required=True,
                   help="checkpoint NAME.json of a plain cnn or an lstm model")
    p.add_argument("--data", required=True,
                   help="its prepared dataset (cnn: eskimez2020, lstm: eskimez2018)")
    p.add_argument("--basis", help="the model's PCA basis, if not the checkpoint's NAME.basis.json")
    p.add_argument("--out", required=True, help="the new checkpoint NAME.json")
    p.add_argument("--frames", type=int,
                   help="K: frames each side (default 16 for a cnn, 4 for an lstm)")
    p.add_argument("--ridge", type=float, help="default 1e-3 for a cnn, 1e-2 for an lstm")
    p.add_argument("--padding", default="edge", choices=("edge", "zeros"),
                   help="how a clip continues beyond its ends: its first/last frame repeated "
                        "(default) or the neutral face")
    p.add_argument("--components", type=int, default=10,
                   help="LSTM: the size of the landmark PCA the filter works in (default 10)")
    p.add_argument("--split", choices=("train", "val"),
                   help="the split to fit on (default: train for a CNN, val for the LSTM)")
    p.add_argument("--max-clips", type=int)
    p.add_argument("--noise", help="folder of noise files: fit on noisy copies of the clips too")
    p.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 5.0, 0.0],
                   help="SNRs (dB) of the noisy copies (default 20 10 5 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 on success, 2 on an unusable model or dataset."""
    from tf_talkface.data.manifest import DatasetError
    from tf_talkface.export import ExportError, load_trained

    args = build_parser().parse_args(argv)
    try:
        model = load_trained(args.model, basis=args.basis)
        common = dict(max_clips=args.max_clips, progress=not args.quiet, noise=args.noise,
                      snrs=tuple(args.snr), seed=args.seed)
        if model.kind == "lstm":
            if args.padding != "edge":
                raise PostFilterError("the LSTM's post-filter has edge padding only")
            filtered, record = fit_output_filter(
                model, args.data, 4 if args.frames is None else args.frames, args.components,
                1e-2 if args.ridge is None else args.ridge, split=args.split or "val", **common)
        else:
            filtered, record = fit_post_filter(
                model, args.data, 16 if args.frames is None else args.frames,
                1e-3 if args.ridge is None else args.ridge,
                split=args.split or "train", padding=args.padding, **common)
        save_checkpoint(filtered, args.model, record, args.out)
    except (PostFilterError, ExportError, DatasetError, OSError) as e:
        print(f"post_filter: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{args.out}: K={record['frames']}, {record['clips']} clips; {record['split']}-split R^2 "
              f"per component {record['r2_before']} -> {record['r2_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
