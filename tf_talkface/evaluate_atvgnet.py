"""``python -m tf_talkface.evaluate_atvgnet``: ATVGnet's frames against the real video, beside
two baselines, on the test split of an ``atvgnet`` dataset.

Protocol (after the original's ``evaluation_matrix.py``, ``shared/docs/atvgnet_davs.md`` A9): per
test clip the **first frame's aligned crop** is the example image (its stored landmarks the
example landmarks), the clip's own speech drives the model, and every generated frame is scored
against the real crop of the same frame with :mod:`tf_talkface.video_metrics` (SSIM, PSNR, CPBD,
mouth LMD at 256 px). Systems:

* ``atvgnet``: the exported model (AT-net landmarks -> VG-net frames);
* ``example``: the example crop repeated (no motion at all);
* ``talking_photo``: the example crop animated by our talking-photo renderer
  (:func:`tf_talkface.animate.animator.animate_photo`, mesh warp, no head motion or blinks, lip
  gain 1) with the *same* AT-net landmarks, which separates what VG-net adds from what the landmarks give.

Writes ``results.md``, ``summary.json`` and ``frames.png`` (real | example | talking photo |
ATVGnet side by side per clip, 4 frames of each of 3 clips top to bottom: look at it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tf_talkface.console import os_error_message, quiet_tensorflow

quiet_tensorflow()

SYSTEMS = ("atvgnet", "example", "talking_photo")
CROP = 128


def _decode(jpegs) -> np.ndarray:
    import cv2

    return np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR),
                                  cv2.COLOR_BGR2RGB) for b in jpegs])


def test_clips(data: str | Path, max_clips: int | None = None):
    """Yield ``(clip_id, frames uint8 (T, 128, 128, 3), landmarks float32 (T, 136), audio
    float32 (T * 640,))`` of the test split."""
    from tf_talkface.data.pipeline import read_clips

    for i, c in enumerate(read_clips(data, "test")):
        if max_clips is not None and i >= max_clips:
            return
        yield (c["clip_id"].numpy().decode(), _decode(c["image_jpeg"].numpy()),
               c["landmarks"].numpy().astype(np.float32), c["audio"].numpy().astype(np.float32))


def _talking_photo(crop: np.ndarray, example_lmk: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    from tf_talkface.animate.animator import AnimationSettings, animate_photo
    from tf_talkface.animate.photo import Photo
    from tf_talkface.face.align import normalised_to_crop

    pts = normalised_to_crop(example_lmk)
    photo = Photo(image=crop.copy(), points=pts, source_size=(CROP, CROP),
                  crop_box=(0, 0, CROP, CROP))
    seq = normalised_to_crop(landmarks).astype(np.float32)
    # lip gain 1, not generate's default 2: AT-net's landmarks already move at ~85% of the
    # true opening range, and the baseline should show what the same landmarks give.
    settings = AnimationSettings(head_motion=0.0, blink=False, lip_gain=1.0)
    return np.stack(list(animate_photo(photo, seq, neutral=pts, settings=settings)))


def evaluate_atvgnet(model_path: str | Path, data: str | Path, out: str | Path,
                     max_clips: int | None = None, progress: bool = True) -> dict:
    """Score the systems of the module docstring on the test clips; returns the summary.

    Raises:
        ModelError: not an ATVGnet model. DatasetError: not an atvgnet dataset.
    """
    import cv2
    from tqdm.auto import tqdm

    from tf_talkface.atvgnet_serving import load_atvgnet
    from tf_talkface.data.manifest import DatasetError, load_manifest
    from tf_talkface.video_metrics import VideoScores, score_clip

    if load_manifest(data)["recipe"]["name"] != "atvgnet":
        raise DatasetError(f"{data}: not an atvgnet dataset")
    model = load_atvgnet(model_path)
    scores = {s: VideoScores() for s in SYSTEMS}
    lm_pred, lm_static, lm_true = [], [], []
    shown = []
    n_clips = 0
    for cid, real, lmk, audio in tqdm(list(test_clips(data, max_clips)), desc="evaluate",
                                      unit="clip", disable=not progress):
        ex, ex_lmk = real[0], lmk[0]
        res = model.generate(audio, ex, ex_lmk)
        n = min(len(real), len(res["frames"]))
        gen = np.stack([cv2.resize(f, (CROP, CROP), interpolation=cv2.INTER_CUBIC)
                        for f in res["frames"][:n]])
        systems = {"atvgnet": gen, "example": np.repeat(ex[None], n, axis=0),
                   "talking_photo": _talking_photo(ex, ex_lmk, res["landmarks"][:n])}
        lm_pred.append(res["landmarks"][:n])
        lm_static.append(np.repeat(ex_lmk[None], n, axis=0))
        lm_true.append(lmk[:n])
        for s, frames in systems.items():
            scores[s].extend(score_clip(real[:n], frames))
        if len(shown) < 3:
            idx = np.linspace(n // 4, n - 1, 4).astype(int)
            shown.append((cid, [np.concatenate([real[i], systems["example"][i],
                                                systems["talking_photo"][i], gen[i]], axis=1)
                                for i in idx]))
        n_clips += 1
    from tf_talkface.metrics import pooled_metrics

    summary = {"model": str(model_path), "model_name": model.name, "data": str(data),
               "clips": n_clips, "systems": {s: scores[s].summary() for s in SYSTEMS}}
    if n_clips:
        summary["landmarks"] = {"atnet": pooled_metrics(lm_pred, lm_true),
                                "example": pooled_metrics(lm_static, lm_true),
                                "units": "normalised x5 crop landmarks"}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from tf_talkface.data.manifest import write_json_atomic

    write_json_atomic(out / "summary.json", summary)
    lines = [f"# ATVGnet frames vs the real video ({model.name}, {n_clips} test clips of "
             f"`{data}`)", "",
             "`python -m tf_talkface.evaluate_atvgnet` (module docstring: example = the clip's "
             "first aligned crop). SSIM/PSNR/CPBD/LMD at 256 px; LMD = mean distance of the "
             "centred mouth points in pixels at 256 px (`lmd_sum`: the original's per-frame sum "
             "over the 20 points); CPBD at the frames' own 128 px. Higher is better except LMD.",
             "",
             "| system | frames | SSIM | PSNR (dB) | CPBD | LMD (px) | LMD sum (px) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in SYSTEMS:
        m = summary["systems"][s]
        lines.append(f"| {s} | {m['frames']} | {m['ssim']:.3f} | {m['psnr']:.2f} | "
                     f"{m['cpbd']:.3f} | {m['lmd']:.2f} | {m['lmd_sum']:.1f} |")
    real = summary["systems"][SYSTEMS[0]]
    lines.append(f"| real video (reference) | {real['frames']} | 1 | – | {real['cpbd_real']:.3f} "
                 "| 0 | 0 |")
    if n_clips:
        lines += ["", "AT-net's landmarks against the real crops' (normalised x5 units; `example` = "
                  "the first frame's landmarks held still):", "",
                  "| landmarks | mouth RMSE | LMD | mouth-open r | opening range (truth) |",
                  "|---|---:|---:|---:|---:|"]
        for k in ("atnet", "example"):
            m = summary["landmarks"][k]
            r = m["mouth_open_r"]
            lines.append(f"| {k} | {m['mouth_rmse']:.4f} | {m['lmd']:.4f} | "
                         f"{'–' if not np.isfinite(r) else f'{r:.3f}'} | {m['open_range']:.3f} "
                         f"({m['open_range_true']:.3f}) |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if shown:
        rows = [np.concatenate(f, axis=0) for _, f in shown]
        sheet = np.concatenate(rows, axis=1)
        head = np.full((22, sheet.shape[1], 3), 255, np.uint8)
        for c in range(sheet.shape[1] // CROP):
            cv2.putText(head, ("real", "example", "photo", "ATVGnet")[c % 4], (c * CROP + 4, 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([head, sheet], axis=0)
        cv2.imwrite(str(out / "frames.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tf_talkface.evaluate_atvgnet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True, help="exported ATVGnet model folder")
    p.add_argument("--data", required=True, help="an atvgnet dataset (its test split)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--max-clips", type=int)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    from tf_talkface.card import ModelError
    from tf_talkface.data.manifest import DatasetError

    try:
        s = evaluate_atvgnet(a.model, a.data, a.out, a.max_clips, progress=not a.quiet)
    except (ModelError, DatasetError) as e:
        print(f"evaluate_atvgnet: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"evaluate_atvgnet: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    print((Path(a.out) / "results.md").read_text())
    return 0 if s["clips"] else 1


if __name__ == "__main__":
    sys.exit(main())
