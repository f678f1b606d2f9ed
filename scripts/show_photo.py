"""Talking-photo examples on real faces: a contact sheet PNG and short mp4s.

For each source face (the stills in ``photos/``, a frame of the 1080p ``video/obama2s.mp4``, a
GRID s1 frame and frames of two other GRID speakers from ``grid/misc``), the bundled default
model's landmarks for real speech drive the photo (default settings, ``--seed``), and the sheet
shows, per row: the input, the rest frame (silence: the mouth closed), the most open mouth, a
blink, and a close-up of the mouth at its most open (the teeth). Every frame is also checked by
dlib (face found; the mouth opening it measures against the driving landmarks, Pearson r), and
the figures are printed.

    python scripts/show_photo.py [--out docs/results/photo] [--speech ../shared/data/speech/audio_sample.wav]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_talkface.animate.animator import AnimationSettings, PhotoAnimator, write_talking_photo  # noqa: E402
from tf_talkface.animate.motion import frame_energy, model_neutral  # noqa: E402
from tf_talkface.animate.photo import detect_faces, load_photo  # noqa: E402
from tf_talkface.assets import EXAMPLE_PHOTO, EXAMPLE_SPEECH  # noqa: E402
from tf_talkface.audio.io import load_audio  # noqa: E402
from tf_talkface.face.landmarks import iter_frames  # noqa: E402
from tf_talkface.face.normalize import inner_lip_gap  # noqa: E402
from tf_talkface.resources import shared_data_dir  # noqa: E402
from tf_talkface.saved_model import load_model  # noqa: E402
from tf_talkface.viz.video_io import write_png  # noqa: E402

TILE_H = 160


def _frame_of(video: Path, index: int | None) -> np.ndarray:
    last = None
    for i, f in enumerate(iter_frames(video, "rgb24")):
        last = f
        if index is not None and i == index:
            break
    return np.ascontiguousarray(last)


def sources(data: Path, tmp: Path) -> list[tuple[str, Path, dict]]:
    out = [("example portrait (bundled)", EXAMPLE_PHOTO, {})]
    if data is None:
        return out
    out += [("photos/obama-1080p.jpg", data / "photos" / "obama-1080p.jpg", {}),
            ("photos/two_people.jpg face 1", data / "photos" / "two_people.jpg", {"face_index": 1}),
            ("photos/obama_partial_face.jpg", data / "photos" / "obama_partial_face.jpg", {})]
    for label, video, idx in (("video/obama2s.mp4 (1080p)", data / "video" / "obama2s.mp4", None),
                              ("grid/s1/bbaf3s.mp4", data / "grid" / "s1" / "bbaf3s.mp4", 0),
                              ("grid/misc/lbax4n.mpg", data / "grid" / "misc" / "lbax4n.mpg", 0),
                              ("grid/misc/pwij3p.mpg", data / "grid" / "misc" / "pwij3p.mpg", 0)):
        f = tmp / (video.stem + ".png")
        cv2.imwrite(str(f), cv2.cvtColor(_frame_of(video, idx), cv2.COLOR_RGB2BGR))
        out.append((label, f, {}))
    return out


def _crop(img: np.ndarray, pts: np.ndarray, scale: float = 1.7) -> np.ndarray:
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    c = (lo + hi) / 2 - (0, 0.1 * (hi - lo)[1])
    side = scale * float(max(hi - lo))
    x0, y0 = int(max(c[0] - side / 2, 0)), int(max(c[1] - side / 2, 0))
    x1, y1 = int(min(c[0] + side / 2, img.shape[1])), int(min(c[1] + side / 2, img.shape[0]))
    return img[y0:y1, x0:x1]


def _tile(img: np.ndarray, h: int = TILE_H) -> np.ndarray:
    return cv2.resize(img, (max(1, round(img.shape[1] * h / img.shape[0])), h),
                      interpolation=cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_CUBIC)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/results/photo"))
    p.add_argument("--speech", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = shared_data_dir()
    speech = args.speech or (data / "speech" / "audio_sample.wav" if data else EXAMPLE_SPEECH)
    model = load_model(None)
    y = load_audio(speech, model.sample_rate)
    lm = model.predict(y)
    neutral = model_neutral(model)
    energy = frame_energy(y, model.sample_rate, len(lm))
    drive = inner_lip_gap(lm)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, kw in sources(data, Path(tmp)):
            photo = load_photo(path, size=540, **kw)
            anim = PhotoAnimator(photo, neutral, AnimationSettings(seed=args.seed))
            frames = list(anim.frames(lm, energy))
            meas, miss = [], 0
            centre = photo.points.mean(axis=0)
            for f in frames:
                found = detect_faces(f)   # the animated face: the one nearest the photo's
                found = sorted(found, key=lambda x: np.hypot(*(x.points.mean(0) - centre)))
                miss += not found
                meas.append(inner_lip_gap(found[0].points[None])[0] if found else np.nan)
            meas = np.array(meas)
            ok = np.isfinite(meas)
            r = float(np.corrcoef(meas[ok], drive[ok])[0, 1])
            i_open = int(np.argmax(drive))
            blink = next(t for t in range(len(lm)) if anim.blinker.closure(t) >= 0.95)
            pts = photo.points
            print(f"{label:32s} {photo.size[0]}x{photo.size[1]} mouth closed first: "
                  f"{anim.mouth_closed}; teeth: {'photo' if anim.painter.texture is not None else 'synthetic'}; "
                  f"dlib found the face in {len(frames) - miss}/{len(frames)} frames; "
                  f"mouth opening r = {r:.3f}")
            mouth = _crop(frames[i_open], pts[48:68], 1.6)
            row = [_label(_tile(_crop(photo.image, pts)), label.split(" (")[0][-28:]),
                   _label(_tile(_crop(anim.base, pts)), "rest (silence)"),
                   _label(_tile(_crop(frames[i_open], pts)), f"open, frame {i_open}"),
                   _label(_tile(_crop(frames[blink], pts)), f"blink, frame {blink}"),
                   _label(_tile(mouth), f"teeth (r={r:.2f})")]
            rows.append(np.hstack(row))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                       for r in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    write_png(args.out / "contact_sheet.png", sheet)
    # a short video: the README's main job (bundled example speech + portrait)
    ye = load_audio(EXAMPLE_SPEECH, model.sample_rate)
    lme = model.predict(ye)
    write_talking_photo(EXAMPLE_PHOTO, lme, args.out / "example.mp4", audio=EXAMPLE_SPEECH,
                        neutral=neutral, energy=frame_energy(ye, model.sample_rate, len(lme)),
                        settings=AnimationSettings(seed=args.seed))
    print(f"wrote {args.out / 'contact_sheet.png'} ({sheet.shape[1]}x{sheet.shape[0]}), "
          f"{args.out / 'example.mp4'} ({(args.out / 'example.mp4').stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
