"""Contact sheet of an ``atvgnet`` dataset: is the data layer right?

Per clip, one row: 8 consecutive aligned crops as stored (JPEG) with their landmarks (the stored
normalised landmarks mapped back into the crop, green; the 6-component PCA reconstruction, red),
the mean of all the clip's crops (sharp eyes and nose = no jitter; the mouth blurs because it
moves), and the clip's frame with the crop pasted back by the inverse of its stored matrix
(``animate/compose.paste_back``; the crop's outline in yellow) beside the original frame and
their difference x4.

    python scripts/show_atvgnet_data.py DATASET [--clips N] [--out docs/results/atvgnet/data_check.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from tf_talkface.animate.compose import paste_back
from tf_talkface.data.manifest import load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, iter_clips
from tf_talkface.face.align import invert_transform, normalised_to_crop, transform_points
from tf_talkface.face.landmarks import iter_frames
from tf_talkface.face.pca import PCABasis
from tf_talkface.viz.video_io import write_png

ZOOM = 1.5


def video_path(manifest: dict, source: str) -> Path:
    root = source.split("/", 1)[0]
    for s in manifest["sources"]:
        if Path(s).name == root:
            return Path(s).parent / source
    raise FileNotFoundError(f"no --videos folder named {root} in the manifest's sources")


def tile(img: np.ndarray, pts: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    big = cv2.resize(img, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_CUBIC)
    r = 1 if ZOOM < 2 else 2
    for p, color in pts:
        for x, y in p:
            cv2.circle(big, (int(round((x + 0.5) * ZOOM - 0.5)), int(round((y + 0.5) * ZOOM - 0.5))),
                       r, color, -1, cv2.LINE_AA)
    return big


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--split", default="test")
    ap.add_argument("--start", type=int, default=30, help="first frame of the crops shown")
    ap.add_argument("--crops", type=int, default=5, help="consecutive crops shown per clip")
    ap.add_argument("--out", default="docs/results/atvgnet/data_check.png")
    args = ap.parse_args()
    m = load_manifest(args.dataset)
    basis = PCABasis.load(args.dataset)
    rows = []
    for n, clip in enumerate(iter_clips(shard_paths(args.dataset, m, args.split),
                                        RecordSpec.from_manifest(m))):
        if n >= args.clips:
            break
        crops = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                 for j in clip["image_jpeg"]]
        lm = normalised_to_crop(clip["landmarks"])
        rec = normalised_to_crop(basis.reconstruct(clip["pca"]).reshape(-1, 136))
        s = args.start
        tiles = [label(tile(crops[k], [(rec[k], (255, 60, 60)), (lm[k], (60, 255, 60))]), f"{k}")
                 for k in range(s, s + args.crops)]
        mean = np.mean(np.stack(crops).astype(np.float32), axis=0).astype(np.uint8)
        tiles.append(label(tile(mean, []), "mean of all"))
        frame = [f.copy() for i, f in zip(range(s + 1), iter_frames(video_path(m, clip["source"]), "rgb24"))][s]
        t = clip["crop_matrix"][s].astype(np.float64)
        pasted = paste_back(frame, crops[s], t)
        diff = np.clip(np.abs(pasted.astype(int) - frame) * 4, 0, 255).astype(np.uint8)
        box = transform_points(np.array([[-0.5, -0.5], [127.5, -0.5], [127.5, 127.5], [-0.5, 127.5]]),
                               invert_transform(t))
        cv2.polylines(pasted, [np.round(box * 4).astype(np.int32)], True, (255, 220, 0), 1,
                      cv2.LINE_AA, 2)
        h = tiles[0].shape[0]
        pair = np.hstack([frame, pasted, diff])
        pair = cv2.resize(pair, (int(pair.shape[1] * h / pair.shape[0]), h), interpolation=cv2.INTER_AREA)
        tiles.append(label(pair, f"frame {s} | crop {s} pasted back | difference x4"))
        row = np.hstack(tiles)
        rows.append(label(np.vstack([np.zeros((20, row.shape[1], 3), np.uint8), row]),
                          f"{clip['clip_id']} ({clip['split']}): crops {s}-{s + args.crops - 1}, "
                          "green = stored landmarks, red = 6-PCA reconstruction"))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sheet)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
