"""Would a temporal post-filter help the 2018 LSTM? An offline study (issue 11, session 9).

    python scripts/lstm_post_filter_study.py --model saved_models/lstm_grid_s1/3 \
        --data tfrecords/grid_s1_2018 --heldout tfrecords/grid_misc_2018 \
        --speech ../shared/data/speech [--cache /tmp/lstm_outputs.pkl]

The CNN's post-filter (:mod:`tf_talkface.post_filter`) is a least-squares filter over +-K frames
of the network's PCA output. The LSTM predicts 136 landmark coordinates, so here the filter
runs in a PCA of the training split's true landmarks (``--components``): the prediction's
coefficients are filtered and the part of the prediction outside the PCA passes unchanged.
The LSTM over-fits s1 (its training-split outputs are better than its outputs on anything
new), so a filter fitted on its training outputs amplifies; this study fits on the
**validation** split too, which the LSTM did not learn from.

Prints, for each fit split, padding, PCA size, span and ridge, the mean over clips of mouth RMSE and
mouth-opening r and the opening range, on s1 validation (in-sample for the val fits), s1 test
and the held-out speakers, and the opening range on every speech file as it is (mean, files
>= 0.12, smallest). Nothing is written but the optional cache of the model's outputs. No
training; the network is only run forward (its SavedModel).
"""
from __future__ import annotations

import argparse
import itertools
import pickle
from pathlib import Path

import numpy as np


def _outputs(model, data: str, split: str, limit: int | None = None) -> list:
    from tf_talkface.data.pipeline import read_clips

    res = []
    for i, c in enumerate(read_clips(data, split).as_numpy_iterator()):
        if limit and i >= limit:
            break
        p = np.asarray(model.predict(np.asarray(c["audio"])))
        t = np.asarray(c["landmarks"]).reshape(-1, 68, 2)
        n = min(len(p), len(t))
        res.append((p[:n], t[:n]))
    return res


def _scores(out: dict, apply, sets=("val", "test", "heldout")) -> dict:
    from tf_talkface.metrics import clip_metrics, opening_range

    row = {}
    for s in sets:
        ms = [clip_metrics(apply(p), t) for p, t in out[s]]
        row[s] = (np.mean([x["mouth_rmse"] for x in ms]),
                  np.nanmean([x["mouth_open_r"] for x in ms]),
                  np.mean([x["open_range"] for x in ms]))
    rs = [opening_range(apply(p)) for p in out["speech"].values()]
    row["speech"] = (float(np.mean(rs)), sum(r >= 0.12 for r in rs), float(min(rs)))
    return row


def main() -> None:
    from tf_talkface.audio.io import load_audio
    from tf_talkface.metrics import mouth_rmse
    from tf_talkface.models.layers import filter_sequence
    from tf_talkface.post_filter import solve_filter
    from tf_talkface.saved_model import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="saved_models/lstm_grid_s1/3")
    ap.add_argument("--data", default="tfrecords/grid_s1_2018")
    ap.add_argument("--heldout", default="tfrecords/grid_misc_2018")
    ap.add_argument("--speech", default="../shared/data/speech")
    ap.add_argument("--train-clips", type=int, default=300)
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 8])
    ap.add_argument("--components", type=int, nargs="+", default=[20, 10])
    ap.add_argument("--ridge", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--fits", nargs="+", default=["train", "val"], choices=["train", "val", "valA"],
                    help="the splits to fit on; valA: the even validation clips, scored on the "
                         "odd ones (valB), for choosing the settings without the test sets")
    ap.add_argument("--paddings", nargs="+", default=["zeros", "edge"])
    ap.add_argument("--cache", help="pickle of the model's outputs (reused when present)")
    a = ap.parse_args()

    cache = Path(a.cache) if a.cache else None
    if cache and cache.exists():
        out = pickle.loads(cache.read_bytes())
    else:
        m = load_model(a.model)
        out = {"train": _outputs(m, a.data, "train", a.train_clips), "val": _outputs(m, a.data, "val"),
               "test": _outputs(m, a.data, "test"), "heldout": _outputs(m, a.heldout, "test"),
               "speech": {f.name: np.asarray(m.predict(load_audio(f, m.sample_rate)))
                          for f in sorted(Path(a.speech).iterdir()) if f.is_file()}}
        if cache:
            cache.write_bytes(pickle.dumps(out))
    out["valA"], out["valB"] = out["val"][0::2], out["val"][1::2]
    truth = np.concatenate([t.reshape(len(t), -1) for _, t in out["train"]])
    mean = truth.mean(0)
    _, _, vt = np.linalg.svd(truth - mean, full_matrices=False)

    def fmt(row):
        return "  ".join(f"{k}: " + "/".join(f"{v:.5f}" for v in x) for k, x in row.items())

    print("model as it is:", fmt(_scores(out, lambda p: p)))
    mf = mean.reshape(68, 2)
    for s in ("val", "valB", "test", "heldout"):
        print(f"mean face, {s}: mouth RMSE "
              f"{np.mean([mouth_rmse(np.repeat(mf[None], len(t), 0), t) for _, t in out[s]]):.5f}")
    for fit in a.fits:
        sets = ("valB", "test", "heldout") if fit == "valA" else ("val", "test", "heldout")
        for pad, k, frames, ridge in itertools.product(a.paddings, a.components, a.frames, a.ridge):
            comps = vt[:k]

            def codes(x):
                return (x.reshape(len(x), -1) - mean) @ comps.T

            kernel, bias = solve_filter([codes(p) for p, _ in out[fit]],
                                        [codes(t) for _, t in out[fit]], frames,
                                        ridge=ridge, padding=pad)

            def apply(p):
                c = codes(p)
                f = filter_sequence(c, kernel, bias, pad)
                return (p.reshape(len(p), -1) + (f - c) @ comps).reshape(-1, 68, 2)

            print(f"fit {fit}, {pad}, {k} components, +-{frames}, ridge {ridge:g}:",
                  fmt(_scores(out, apply, sets)), flush=True)


if __name__ == "__main__":
    main()
