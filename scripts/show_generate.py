"""Show an exported model on real input: speech files, and GRID videos against their ground truth.

    python scripts/show_generate.py -m saved_models/cnn_nr_grid_s1 \
        --speech ../shared/data/speech/obama.wav ../shared/data/speech/test1.flac \
        --videos ../shared/data/grid/s1/bbal6n.mp4 ../shared/data/grid/s1/bbas2p.mp4 \
        --out docs/results/generate

Speech file NAME: ``NAME.mp4`` (painted face with the sound, via ``generate``) and
``NAME_mouth.png``: predicted mouth opening (inner-lip gap) over time beside the speech's frame
energy (dB), with their correlation.

Video NAME (a talking-face clip, e.g. a GRID test-split clip): the ground truth is the video's
own dlib landmarks normalised like the model's training data (2020: Procrustes to the model's
template + identity removal; 2018: eye alignment + expression transfer with the training mean
shape, /600); ``NAME_side_by_side.mp4`` (ground truth | predicted, line drawings, the clip's
sound, frame numbers), ``NAME_mouth.png`` (true vs predicted mouth opening, Pearson r) and
``NAME_frames.png`` (the most open / median / most closed true frames, both panels).
Prints one summary line per input.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from tf_talkface.audio.io import load_audio
from tf_talkface.face.normalize import inner_lip_gap
from tf_talkface.viz.plots import pyplot, save_figure
from tf_talkface.saved_model import BASIS_FILE, load_model

VIDEO_RATE = 44100


def frame_energy_db(y: np.ndarray, sr: int, n: int) -> np.ndarray:
    """RMS level (dB) of each 40 ms frame of ``y`` (n frames)."""
    hop = sr // 25
    e = [np.sqrt(np.mean(np.square(y[i * hop:(i + 1) * hop]))) if i * hop < len(y) else 0.0
         for i in range(n)]
    return 20 * np.log10(np.asarray(e) + 1e-5)


def ground_truth(model, video: Path) -> np.ndarray:
    """The video's landmarks at 25 fps in the model's normalised coordinates (frames, 68, 2)."""
    from tf_talkface.face.landmarks import extract_landmarks
    from tf_talkface.face.normalize import normalize_eskimez2018, normalize_eskimez2020

    seq = extract_landmarks(video).at_fps(25)
    if model.card["recipe"] == "eskimez2020":
        from tf_talkface.face.pca import PCABasis

        template = PCABasis.load(model.path / BASIS_FILE).template
        return normalize_eskimez2020(seq, template)[0]
    mean = np.asarray(model.card["training_data"]["normalisation"]["mean_shape_aligned"], np.float32)
    return normalize_eskimez2018(seq, mean)


def show_speech(model, path: Path, out: Path) -> str:
    from tf_talkface.generate import generate_file

    files = generate_file(path, model, out, video="painted", size=384)
    lm = np.load(files["npy"])
    gap = inner_lip_gap(lm)
    energy = frame_energy_db(load_audio(path, VIDEO_RATE), VIDEO_RATE, len(lm))
    r = np.corrcoef(gap, energy)[0, 1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3))
    t = np.arange(len(lm)) / 25
    ax.plot(t, gap, "r-", lw=1, label="predicted mouth opening")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("inner-lip gap (model units)")
    ax2 = ax.twinx()
    ax2.plot(t, energy, "k-", lw=0.6, alpha=0.5, label="speech level")
    ax2.set_ylabel("frame level (dB)")
    ax.set_title(f"{path.name} — {model.name}: mouth opening vs speech level, r = {r:.2f}")
    fig.legend(loc="upper right", fontsize=8)
    save_figure(fig, out / f"{path.stem}_mouth.png")
    return f"{path.name}: {len(lm)} frames, gap std {gap.std():.4f}, r(gap, level) = {r:.2f}"


def show_video(model, video: Path, out: Path) -> str:
    import cv2

    from tf_talkface.metrics import mouth_opening_correlation
    from tf_talkface.viz.render import render_frames, render_side_by_side

    true = ground_truth(model, video)
    pred = model.predict(load_audio(video, model.sample_rate))
    n = min(len(true), len(pred))
    true, pred = true[:n], pred[:n]
    r = mouth_opening_correlation(pred, true)
    panels = [("ground truth (video)", true), (f"predicted ({model.card['name']})", pred)]
    render_side_by_side(panels, out / f"{video.stem}_side_by_side.mp4",
                        audio=load_audio(video, VIDEO_RATE), sample_rate=VIDEO_RATE,
                        style="lines", size=(320, 320), frame_numbers=True)
    g_true, g_pred = inner_lip_gap(true), inner_lip_gap(pred)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    t = np.arange(n) / 25
    ax.plot(t, g_true, "k-", label="ground truth (video)")
    ax.plot(t, g_pred, "r-", label="predicted")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("inner-lip gap (model units)")
    ax.set_title(f"{video.name} — {model.name}: mouth opening, r = {r:.2f}")
    ax.legend(fontsize=8)
    save_figure(fig, out / f"{video.stem}_mouth.png")
    order = np.argsort(g_true)
    picks = [int(order[-1]), int(order[len(order) // 2]), int(order[0])]
    rows = []
    for name, seq in panels:
        frames = list(render_frames(seq, style="lines", size=(224, 224), title=name))
        rows.append(np.concatenate([frames[i] for i in picks], axis=1))
    sheet = np.concatenate(rows, axis=0)
    tmp = out / f".{video.stem}_frames.tmp.png"
    cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    os.replace(tmp, out / f"{video.stem}_frames.png")
    return (f"{video.name}: {n} frames, mouth-opening r = {r:.2f}, gap std true "
            f"{g_true.std():.4f} predicted {g_pred.std():.4f} (frames {picks}: open/median/closed)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="exported model (default: the bundled one)")
    ap.add_argument("--speech", nargs="*", default=[], type=Path)
    ap.add_argument("--videos", nargs="*", default=[], type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/results/generate"))
    a = ap.parse_args(argv)
    model = load_model(a.model)
    a.out.mkdir(parents=True, exist_ok=True)
    for p in a.speech:
        print(show_speech(model, p, a.out))
    for v in a.videos:
        print(show_video(model, v, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
