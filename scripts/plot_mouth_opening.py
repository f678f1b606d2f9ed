"""Predicted vs true mouth opening (inner-lip gap) over time for a few test clips of a run.

    python scripts/plot_mouth_opening.py runs/lstm_d1_c3 --out docs/results/lstm_d1_c3_mouth_opening.png
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import keras
    import tensorflow as tf

    from tf_talkface.data.pipeline import initial_condition, read_clips
    from tf_talkface.face.normalize import inner_lip_gap
    from tf_talkface.models.registry import custom_objects
    from tf_talkface.viz.plots import pyplot, save_figure
    from tf_talkface.train import TrainConfig, predict_clip

    run = Path(a.run)
    cfg = json.loads((run / "config.json").read_text())["train"]
    model = keras.saving.load_model(run / "best.keras", custom_objects=custom_objects())
    net = model.model if hasattr(model, "w_feat") else model
    tcfg = TrainConfig(**cfg)
    basis = init = None
    if tcfg.model != "lstm":
        from tf_talkface.face.pca import PCABasis
        basis = PCABasis.load(tcfg.data)
        init = tf.constant(initial_condition(tcfg.data))[None]
    plt = pyplot()
    fig, axes = plt.subplots(a.clips, 1, figsize=(9, 2.0 * a.clips), sharex=True)
    for ax, clip in zip(np.atleast_1d(axes), read_clips(cfg["data"], "test").take(a.clips)):
        pred, true = predict_clip(net, tcfg, clip, basis, init)
        gp, gt = inner_lip_gap(pred.reshape(-1, 68, 2)), inner_lip_gap(true.reshape(-1, 68, 2))
        t = np.arange(len(gt)) / 25.0
        ax.plot(t, gt, "k-", label="true (dlib, normalised)")
        ax.plot(t, gp, "r-", label="predicted")
        r = np.corrcoef(gp, gt)[0, 1] if gp.std() > 0 else float("nan")
        ax.set_title(f"{clip['clip_id'].numpy().decode()}   r = {r:.2f}", fontsize=9)
        ax.set_ylabel("inner-lip gap")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle(f"{run.name}: mouth opening on test clips", fontsize=10)
    fig.tight_layout()
    print(save_figure(fig, a.out))


if __name__ == "__main__":
    main()
