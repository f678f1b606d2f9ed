"""Talking-photo speed: our renderer against the per-triangle renderer, and the whole command.

Renderers (same photo, same face mesh, same vertex positions per frame, measured side by side
in one run, interleaved in rounds so that machine load hits both alike):

* **ours** -- :class:`tf_talkface.animate.photo_warp.MeshWarper`: the moving triangles
  rasterised into a uint8 id image, per-pixel affines gathered with ``cv2.LUT``, one
  ``cv2.remap`` over the moving region;
* **per-triangle** -- the common approach (learnopencv's "Face Morph"/"warp triangle", also the
  usual Delaunay face-swap code): for every triangle whose corners moved, ``cv2.warpAffine`` of
  the source triangle's bounding rectangle into the destination triangle's bounding rectangle,
  a ``cv2.fillConvexPoly`` mask, and a masked copy into the frame (``cv2.copyTo``; the usual
  float blend is slower). Implemented here, not in the library.

Both are timed (a) as the warp alone and (b) inside the whole frame renderer
(:meth:`PhotoAnimator.render`: warp + mouth painting + eyelids), with head motion on (every
triangle moves: the normal case) on the landmarks the bundled model predicts for real speech.
The two warps must agree (mean absolute difference < 0.5 grey levels; only pixels on triangle
edges may differ), else the script exits with status 1.

Sizes: a square face crop of ``--photo`` (default ``photos/obama-1080p.jpg``) at 256 and 512 px,
and the whole 1920x1080 frame.

Whole command (unless ``--no-command``): ``python -m tf_talkface.generate -i SPEECH --image
PHOTO -o TMP`` on ``--seconds`` of speech (``speech/obama.wav`` repeated), timed as a
subprocess (model loading, prediction, photo preparation, rendering, H.264 encoding, audio);
RTF = wall time / audio duration. Also the in-process split of the same work.

Goals (issue 13): >= 100 fps at 512 px and >= 4x the per-triangle renderer on this 2-core CPU.

    python scripts/bench_photo.py [--frames 250] [--rounds 3] [--seconds 60] [--no-command]
                                  [--out docs/results/performance/bench_photo.txt]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tf_talkface.animate.animator import AnimationSettings, PhotoAnimator  # noqa: E402
from tf_talkface.animate.motion import model_neutral  # noqa: E402
from tf_talkface.animate.photo import DEFAULT_CROP, load_photo  # noqa: E402
from tf_talkface.resources import shared_data_dir  # noqa: E402

GOAL_FPS_512 = 100.0
GOAL_SPEEDUP = 4.0


class PerTriangleWarper:
    """The per-triangle ``cv2.warpAffine`` renderer (baseline), same interface as
    :class:`~tf_talkface.animate.photo_warp.MeshWarper`."""

    def __init__(self, image: np.ndarray, mesh, src_vertices=None):
        self.image = np.ascontiguousarray(image)
        self.mesh = mesh
        self.src = np.asarray(mesh.vertices if src_vertices is None else src_vertices, np.float64)

    def warp(self, dst: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        img = self.image
        h, w = img.shape[:2]
        out = img.copy() if out is None else (np.copyto(out, img) or out)
        dst = np.asarray(dst, np.float64)
        moved = np.abs(dst - self.src).max(axis=1) > 1e-3
        for t in self.mesh.triangles:
            if not moved[t].any():
                continue
            s, d = self.src[t].astype(np.float32), dst[t].astype(np.float32)
            dx, dy, dw, dh = cv2.boundingRect(d)
            x0, y0 = max(dx, 0), max(dy, 0)
            x1, y1 = min(dx + dw, w), min(dy + dh, h)
            if x1 <= x0 or y1 <= y0:
                continue
            sx, sy, sw, sh = cv2.boundingRect(s)
            sx0, sy0 = max(sx - 1, 0), max(sy - 1, 0)
            sx1, sy1 = min(sx + sw + 1, w), min(sy + sh + 1, h)
            m = cv2.getAffineTransform(s - np.float32([sx0, sy0]), d - np.float32([x0, y0]))
            patch = cv2.warpAffine(img[sy0:sy1, sx0:sx1], m, (x1 - x0, y1 - y0),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillConvexPoly(mask, np.round((d - [x0, y0]) * 16).astype(np.int32), 255,
                               cv2.LINE_8, 4)
            roi = out[y0:y1, x0:x1]
            cv2.copyTo(patch, mask, roi)
        return out


def _speech(seconds: float, sr: int = 16000) -> np.ndarray:
    from tf_talkface.audio.io import load_audio

    data = shared_data_dir()
    src = data / "speech" / "obama.wav" if data else None
    if src is None or not src.is_file():
        from tf_talkface.assets import EXAMPLE_SPEECH

        src = EXAMPLE_SPEECH
    y = load_audio(src, sr)
    reps = int(np.ceil(seconds * sr / len(y)))
    return np.tile(y, reps)[: int(seconds * sr)], src


def _photos(path: Path) -> list[tuple[str, object]]:
    return [("256x256 (face crop)", load_photo(path, size=256, crop=DEFAULT_CROP)),
            ("512x512 (face crop)", load_photo(path, size=512, crop=DEFAULT_CROP)),
            ("1920x1080 (whole frame)", load_photo(path, size=1080))]


def _vertex_sequence(anim: PhotoAnimator, landmarks: np.ndarray) -> list[tuple]:
    """The per-frame (points, pose, closure) the animator renders, computed once."""
    seq = []
    pts = anim.transfer(landmarks)
    rows = anim.smoother.push(np.concatenate([pts.reshape(len(pts), -1),
                                              anim.energy_proxy(pts)[:, None]], axis=1))
    rows += anim.smoother.flush()
    anim.head.reset()
    anim.blinker.reset()
    for t, row in enumerate(rows):
        seq.append((row[:-1].reshape(68, 2), anim.head.step(float(row[-1])),
                    anim.blinker.closure(t)))
    return seq


def _time(fn, items) -> float:
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return (time.perf_counter() - t0) / len(items)


def bench_renderers(landmarks, neutral, photo_path, frames, rounds, log):
    rows, ok = [], True
    for name, photo in _photos(photo_path):
        anim = PhotoAnimator(photo, neutral, AnimationSettings())
        seq = _vertex_sequence(anim, landmarks[:frames])
        verts = [anim.vertices(*s) for s in seq]
        ours = anim.warper
        base = PerTriangleWarper(anim.base, anim.mesh)
        diffs = []
        for v in verts[:: max(1, len(verts) // 10)]:
            a, b = ours.warp(v), base.warp(v)
            diffs.append(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
        mad = float(np.mean(diffs))
        ok &= mad < 0.5
        t = {"ours_warp": [], "tri_warp": [], "ours_frame": [], "tri_frame": []}
        for _ in range(rounds):
            anim.warper = ours
            t["ours_warp"].append(_time(ours.warp, verts))
            t["ours_frame"].append(_time(lambda s: anim.render(*s), seq))
            anim.warper = base
            t["tri_warp"].append(_time(base.warp, verts))
            t["tri_frame"].append(_time(lambda s: anim.render(*s), seq))
        anim.warper = ours
        med = {k: float(np.median(v)) * 1000 for k, v in t.items()}
        row = dict(name=name, mad=mad, **med)
        rows.append(row)
        log(f"{name:26s} warp: ours {med['ours_warp']:6.2f} ms ({1000 / med['ours_warp']:6.0f} fps)"
            f"  per-triangle {med['tri_warp']:6.2f} ms ({1000 / med['tri_warp']:5.0f} fps)"
            f"  x{med['tri_warp'] / med['ours_warp']:.1f} | whole frame: ours "
            f"{med['ours_frame']:6.2f} ms ({1000 / med['ours_frame']:5.0f} fps)  per-triangle "
            f"{med['tri_frame']:6.2f} ms ({1000 / med['tri_frame']:5.0f} fps)"
            f"  x{med['tri_frame'] / med['ours_frame']:.1f} | mean |diff| {mad:.3f}")
    return rows, ok


def bench_command(seconds, photo_path, log, sizes=(None, 512)):
    """Time ``generate --image`` as a subprocess on ``seconds`` of speech, once per ``--size``
    (``None`` = the default 1080p cap); returns {size: wall seconds}."""
    from tf_talkface.audio.io import write_wav
    from tf_talkface.face.landmarks import video_info

    y, src = _speech(seconds)
    walls = {}
    with tempfile.TemporaryDirectory(prefix="bench_photo_") as tmp:
        wav = Path(tmp) / "speech60.wav"
        write_wav(wav, y, 16000)
        for size in sizes:
            out = Path(tmp) / f"out{size}"
            cmd = [sys.executable, "-m", "tf_talkface.generate", "-i", str(wav), "--image",
                   str(photo_path), "-o", str(out), "--quiet"] + (["--size", str(size)] if size else [])
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                log(f"command failed ({r.returncode}): {r.stderr.strip()[-500:]}")
                continue
            mp4 = out / "speech60.mp4"
            info = video_info(mp4, count_frames=False)
            walls[size] = wall
            log(f"whole command on {seconds:.0f} s of speech ({src.name} repeated), photo "
                f"{photo_path.name} -> {info['width']}x{info['height']}: {wall:.1f} s wall = RTF "
                f"{wall / seconds:.3f} ({seconds / wall:.1f}x real time); mp4 "
                f"{info['duration']:.2f} s, {mp4.stat().st_size / 1e6:.1f} MB; load average "
                f"{os.getloadavg()[0]:.1f}")
            log("  " + " ".join(["python"] + cmd[1:]))
    return walls


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=250, help="frames per renderer and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0, help="speech for the whole command")
    p.add_argument("--photo", type=Path, default=None,
                   help="photo (default ../shared/data/photos/obama-1080p.jpg)")
    p.add_argument("--no-command", action="store_true", help="skip the whole-command timing")
    p.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = p.parse_args(argv)
    lines: list[str] = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    photo = args.photo
    if photo is None:
        data = shared_data_dir()
        if data is None:
            print("bench_photo: no ../shared/data; pass --photo", file=sys.stderr)
            return 2
        photo = data / "photos" / "obama-1080p.jpg"
    cv2.setNumThreads(os.cpu_count() or 1)
    log(f"bench_photo: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OpenCV {cv2.__version__}, numpy {np.__version__}, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at start")
    from tf_talkface.saved_model import load_model

    model = load_model(None)
    y, src = _speech(max(args.frames / 25 + 1, 12), model.sample_rate)
    lm = model.predict(y)
    neutral = model_neutral(model)
    log(f"landmarks: {model.name} on {src.name}, {len(lm)} frames; renderer timing: "
        f"{args.frames} frames x {args.rounds} rounds, median of rounds, head motion and blinks on")
    rows, ok = bench_renderers(lm, neutral, photo, args.frames, args.rounds, log)
    r512 = next(r for r in rows if r["name"].startswith("512"))
    fps512 = 1000 / r512["ours_frame"]
    speed = r512["tri_warp"] / r512["ours_warp"]
    log(f"goals at 512 px: whole frame {fps512:.0f} fps (goal >= {GOAL_FPS_512:.0f}): "
        f"{'met' if fps512 >= GOAL_FPS_512 else 'NOT met'}; warp x{speed:.1f} the per-triangle "
        f"renderer (goal >= {GOAL_SPEEDUP:.0f}x): {'met' if speed >= GOAL_SPEEDUP else 'NOT met'}")
    if not args.no_command:
        bench_command(args.seconds, photo, log)
    log(f"load average at end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    if not ok:
        print("bench_photo: the two renderers disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
