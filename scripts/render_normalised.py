"""Render a prepared clip's landmarks over its video frame: raw dlib points, the 2018
normalisation (eye alignment + expression transfer onto the mean shape) and the 2020
normalisation (Procrustes + identity removal), the last two mapped back into the image.

    python scripts/render_normalised.py --clip s1/bbaf2n --frame 30 --out docs/results/normalised_bbaf2n.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial import procrustes

from tf_talkface.data.manifest import load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, iter_clips
from tf_talkface.face.landmarks import iter_frames
from tf_talkface.face.normalize import CANVAS, EYE_CORNERS, apply_affine, similarity_from_two_points
from tf_talkface.viz.plots import overlay_panels
from tf_talkface.resources import shared_data_dir


def find_clip(dataset: Path, clip_id: str) -> dict:
    m = load_manifest(dataset)
    spec = RecordSpec.from_manifest(m)
    for split in ("train", "val", "test"):
        for c in iter_clips(shard_paths(dataset, m, split), spec):
            if c["clip_id"] == clip_id:
                return c
    raise SystemExit(f"{clip_id} not in {dataset}")


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Map ``src`` (68, 2) onto ``dst`` with the least-squares similarity (for display)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(a.T @ b)
    r = (u @ vt).T
    scale = s.sum() / (a ** 2).sum()
    return (a @ r.T) * scale + mu_d


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d2018", default="tfrecords/grid_s1_2018")
    ap.add_argument("--d2020", default="tfrecords/grid_s1_2020")
    ap.add_argument("--clip", default="s1/bbaf2n")
    ap.add_argument("--frame", type=int, default=30)
    ap.add_argument("--out", default="docs/results/normalised_bbaf2n.png")
    a = ap.parse_args()
    c18, c20 = find_clip(Path(a.d2018), a.clip), find_clip(Path(a.d2020), a.clip)
    video = shared_data_dir() / "grid" / (c18["source"])
    frame = list(iter_frames(video, pix_fmt="rgb24"))[a.frame]
    raw = c18["landmarks_raw"].reshape(-1, 68, 2)
    t = a.frame
    # 2018: undo the first frame's eye alignment (the transform the normalisation applied)
    fwd = similarity_from_two_points(raw[0, list(EYE_CORNERS)],
                                     np.array([[0.3 * CANVAS, CANVAS / 3], [0.7 * CANVAS, CANVAS / 3]]))
    inv = np.linalg.inv(np.vstack([fwd, [0, 0, 1]]))[:2]
    n18 = apply_affine(c18["landmarks"].reshape(-1, 68, 2)[t] * CANVAS, inv)
    # 2020: identity-removed shape placed on the speaker's face by a similarity fit
    n20 = similarity_fit(c20["landmarks"].reshape(-1, 68, 2)[t], raw[t])
    overlay_panels(frame, [
        (f"raw dlib 68 points (frame {t})", [(raw[t], "yellow")]),
        ("2018: eye-aligned + expression transfer\nonto the mean shape (mapped back)", [(n18, "cyan")]),
        ("2020: Procrustes + identity removal\n(similarity-fitted for display)", [(n20, "lime")]),
    ], a.out, title=f"GRID {a.clip}")
    print(a.out)


if __name__ == "__main__":
    main()
