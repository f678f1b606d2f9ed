#!/usr/bin/env python
"""Benchmark landmark extraction: the original's way vs ours, side by side in one run.

(a) original (Eskimez et al. 2018): one process; every frame decoded as full-resolution RGB;
    dlib's HOG detector with 1 upsample on every frame, then the 68-point shape predictor; a
    clip is dropped when a frame has no face or more than one.
(b) ours: :class:`tf_talkface.face.landmarks.LandmarkExtractor` with the fast settings below
    (grey frames, optional downscale before detection, detection every N frames, largest face,
    short gaps interpolated) over a ``multiprocessing.Pool`` of ``--workers`` processes.
    Also (b1): the same settings in this process, to separate the algorithmic speed-up from the
    parallel one (``--no-serial`` skips it).

Prints frames/s of each, the ratio (b)/(a) (project goal: >= 2), and the mean / 95th-percentile
/ max per-point pixel distance between the landmarks of (a) and (b) on the clips both kept.
The dlib models are loaded once before timing (about 1 s); pool start-up is timed as part of
(b) (with the default ``fork`` start method workers inherit the loaded models).

    .venv/bin/python scripts/bench_prepare.py --clips 12
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from tf_talkface.config import LandmarkConfig  # noqa: E402
from tf_talkface.face.landmarks import (  # noqa: E402
    FaceError, dlib_models, extract_landmarks, iter_frames)
from tf_talkface.resources import shared_data_dir  # noqa: E402


def original_extract(path: str) -> tuple[np.ndarray | None, int, str]:
    """The original's way: (points (T,68,2) float32 or None if dropped, n_frames, reason)."""
    detector, predictor = dlib_models()
    rows, reason = [], ""
    n = 0
    for frame in iter_frames(path, pix_fmt="rgb24"):
        n += 1
        dets = detector(frame, 1)
        if len(dets) != 1:
            reason = reason or f"frame {n - 1}: {len(dets)} faces"
            continue  # the original drops the clip; keep decoding so the frame count is fair
        shape = predictor(frame, dets[0])
        rows.append([(p.x, p.y) for p in shape.parts()])
    if reason:
        return None, n, reason
    return np.asarray(rows, dtype=np.float32), n, ""


def _ours(args):
    path, cfg, kw = args
    try:
        return path, extract_landmarks(path, cfg, **kw).points, ""
    except FaceError as e:
        return path, None, str(e)


def pick_clips(data: Path, n: int) -> list[str]:
    allc = sorted(str(p) for p in (data / "grid" / "s1").glob("*.mp4"))
    if not allc:
        raise SystemExit(f"no GRID clips under {data / 'grid' / 's1'}")
    step = max(1, len(allc) // n)
    return allc[::step][:n]  # spread over the speaker's whole session


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=12, help="number of GRID s1 clips (default 12)")
    ap.add_argument("--data", type=Path, default=None,
                    help="shared data folder (default: resources.shared_data_dir())")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="pool size for (b) (default: os.cpu_count())")
    ap.add_argument("--upsample", type=int, default=0)
    ap.add_argument("--detect-max-side", type=int, default=640)
    ap.add_argument("--redetect-every", type=int, default=5)
    ap.add_argument("--max-gap", type=int, default=LandmarkConfig().max_gap)
    ap.add_argument("--track", choices=("box", "landmarks"), default="box")
    ap.add_argument("--pix-fmt", choices=("gray", "rgb24"), default="gray")
    ap.add_argument("--no-serial", action="store_true", help="skip (b1), ours in one process")
    a = ap.parse_args(argv)

    data = a.data or shared_data_dir()
    if data is None:
        raise SystemExit("real data not found: pass --data or set TF_TALKFACE_DATA")
    clips = pick_clips(Path(data), a.clips)
    cfg = LandmarkConfig(upsample=a.upsample, detect_max_side=a.detect_max_side,
                         redetect_every=a.redetect_every, max_gap=a.max_gap)
    kw = {"track": a.track, "pix_fmt": a.pix_fmt}
    print(f"{len(clips)} clips from {data}/grid/s1, cpu_count={os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.2f}")
    print(f"ours: {cfg}, {kw}, workers={a.workers}")

    t0 = time.perf_counter()
    dlib_models()
    print(f"dlib models loaded in {time.perf_counter() - t0:.2f} s (not timed below)")

    # (a) original
    res_a, n_frames = {}, 0
    t0 = time.perf_counter()
    for c in tqdm(clips, desc="(a) original", unit="clip"):
        pts, n, why = original_extract(c)
        n_frames += n
        res_a[c] = (pts, why)
    t_a = time.perf_counter() - t0

    # (b1) ours, serial
    t_b1 = None
    if not a.no_serial:
        t0 = time.perf_counter()
        for c in tqdm(clips, desc="(b1) ours, 1 process", unit="clip"):
            _ours((c, cfg, kw))
        t_b1 = time.perf_counter() - t0

    # (b) ours, pool
    res_b = {}
    t0 = time.perf_counter()
    with mp.Pool(a.workers) as pool:
        for c, pts, why in tqdm(pool.imap_unordered(_ours, [(c, cfg, kw) for c in clips]),
                                total=len(clips), desc=f"(b) ours, {a.workers} workers",
                                unit="clip"):
            res_b[c] = (pts, why)
    t_b = time.perf_counter() - t0

    fps_a, fps_b = n_frames / t_a, n_frames / t_b
    print(f"\nframes: {n_frames}")
    print(f"{'(a) original, 1 process':26s}: {t_a:7.2f} s  {fps_a:8.1f} frames/s")
    if t_b1 is not None:
        print(f"{'(b1) ours, 1 process':26s}: {t_b1:7.2f} s  {n_frames / t_b1:8.1f} frames/s  "
              f"(x{t_a / t_b1:.2f} vs (a))")
    print(f"{f'(b) ours, {a.workers} workers':26s}: {t_b:7.2f} s  {fps_b:8.1f} frames/s")
    print(f"ratio (b)/(a) = {fps_b / fps_a:.2f}  (goal >= 2: {'OK' if fps_b / fps_a >= 2 else 'NOT MET'})")

    for name, res in (("(a)", res_a), ("(b)", res_b)):
        for c, (pts, why) in sorted(res.items()):
            if pts is None:
                print(f"{name} dropped {Path(c).name}: {why}")
    both = [c for c in clips if res_a[c][0] is not None and res_b[c][0] is not None
            and res_a[c][0].shape == res_b[c][0].shape]
    if both:
        d = np.concatenate([np.linalg.norm(res_a[c][0] - res_b[c][0], axis=-1).ravel()
                            for c in both])
        print(f"distance (a) vs (b) on {len(both)} clips: mean {d.mean():.3f} px, "
              f"p95 {np.percentile(d, 95):.3f} px, max {d.max():.3f} px")
    else:
        print("no clip kept by both (a) and (b): no distance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
