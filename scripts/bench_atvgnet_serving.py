"""Generation speed of the exported ATVGnet SavedModel (MFCC + AT-net + VG-net, one call), for
the ``paper`` and ``small`` presets side by side in one run.

    python scripts/bench_atvgnet_serving.py [--seconds 4] [--repeats 3] [--checkpoint DIR]

Each preset is exported with random weights (speed does not depend on them; ``--checkpoint``
adds a trained checkpoint folder), then ``generate`` runs on ``--seconds`` of speech-like noise;
the best of ``--repeats`` calls after one warm-up call is reported as frames per second (25 fps
video), with the ratio to real time. Goals (issue 14): paper >= 25 fps, small >= 100 fps.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _random_checkpoint(preset: str, folder: Path) -> Path:
    from tf_talkface.atvgnet_serving import write_checkpoint
    from tf_talkface.models.atnet import build_atnet
    from tf_talkface.models.atvgnet_config import ATVGConfig
    from tf_talkface.models.vgnet import VGNet

    cfg = ATVGConfig.preset(preset)
    folder.mkdir(parents=True, exist_ok=True)
    build_atnet(cfg).save_weights(folder / "a.weights.h5")
    VGNet(cfg).save_weights(folder / "g.weights.h5")
    rng = np.random.default_rng(0)
    comps = np.linalg.qr(rng.normal(size=(136, 6)))[0].T
    basis = {"mean": rng.normal(0, 0.3, 136).tolist(), "components": comps.tolist()}
    return write_checkpoint(folder / "ck", cfg.to_dict(), basis, {}, folder / "a.weights.h5",
                            folder / "g.weights.h5")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", help="also time a trained checkpoint folder")
    ap.add_argument("--presets", nargs="*", default=["paper", "small"])
    a = ap.parse_args()
    from tf_talkface.atvgnet_serving import export_atvgnet, load_atvgnet

    rng = np.random.default_rng(1)
    n = int(a.seconds * 16000)
    wav = (rng.normal(0, 0.1, n) * np.abs(np.sin(np.arange(n) / 16000 * 2 * np.pi * 3))).astype(np.float32)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    lmk = rng.normal(0, 0.3, 136).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cks = [(p, _random_checkpoint(p, Path(tmp) / p)) for p in a.presets]
        if a.checkpoint:
            cks.append((f"trained:{Path(a.checkpoint).name}", Path(a.checkpoint)))
        for name, ck in cks:
            out = export_atvgnet(ck, Path(tmp) / "sm" / name.replace(":", "_") / "1")
            model = load_atvgnet(out)
            model.generate(wav, crop, lmk)  # warm-up (tracing)
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                res = model.generate(wav, crop, lmk)
                times.append(time.perf_counter() - t0)
            frames = len(res["frames"])
            fps = frames / min(times)
            rows.append((name, model.image_size, frames, min(times), fps))
    print(f"{'model':<24}{'px':>5}{'frames':>8}{'best s':>9}{'fps':>9}{'x real time':>13}")
    for name, px, frames, t, fps in rows:
        print(f"{name:<24}{px:>5}{frames:>8}{t:>9.3f}{fps:>9.1f}{fps / 25:>13.2f}")
    if len(rows) >= 2:
        print(f"{rows[1][0]} / {rows[0][0]}: {rows[1][4] / rows[0][4]:.1f}x")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
