"""What more CPU time gives: a model family's committed checkpoints against their training budget.

    python scripts/learning_curve.py --name cnn --data tfrecords/grid_s1_2020:test \
        --data tfrecords/grid_misc_2020 --out docs/results/voices/learning_curve \
        saved_models/checkpoints/cnn_nr.json saved_models/checkpoints/cnn_nr2.json ...

Each checkpoint written by ``scripts/collect_results.py --weights`` records its
``training_budget``: the updates and wall-clock hours of its run and of every run it continued
(``chain``). This script evaluates every checkpoint given (``tf_talkface.evaluate``, clean
speech, each ``--data`` split: unseen s1 sentences, held-out speakers) and plots mouth RMSE
relative to the static mean face and mouth-opening r against the cumulative hours, with the
recipe (``train.preset``) of each point, so the curve shows what the later hours bought and
where it flattened (issue 11: "if a goal is missed, report ... the learning curve").

Writes ``OUT/NAME_learning_curve.csv``, ``.md`` and ``.png``. The checkpoints of one chain are
not one run: presets and data changed along it (the table says which), so a jump can come from
a recipe change rather than from the hours.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np


def budget(checkpoint: Path) -> dict:
    """``{"updates", "hours", "preset", "trained_on", "post_filter"}`` of one checkpoint (its
    JSON record; ``post_filter``: its K, 0 for none)."""
    ck = json.loads(checkpoint.read_text())
    b = ck.get("training_budget") or {}
    train = ck.get("train", {})
    return {"updates": int(b.get("updates") or 0), "hours": float(b.get("hours") or 0.0),
            "preset": train.get("preset") or "paper", "trained_on": Path(train.get("data", "?")).name,
            "post_filter": (ck.get("post_filter") or {}).get("frames", 0)}


def main() -> None:
    from tf_talkface.evaluate import evaluate
    from tf_talkface.export import export

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="checkpoint NAME.json files, in training order")
    ap.add_argument("--name", required=True, help="the family's name (file names, title)")
    ap.add_argument("--data", action="append", required=True,
                    help="tfrecords/NAME[:split] to evaluate on (repeat; one recipe)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cks = [Path(c) for c in a.checkpoints]
    # evaluated as SavedModels (equal to the checkpoint's Python path, tested; the LSTM's Keras
    # layers called eagerly are ~50x slower than its exported graph)
    tmp = Path(tempfile.mkdtemp(prefix="learning_curve."))
    models = [(c.stem, str(export(c, tmp / c.stem / "1"))) for c in cks]
    rows = []
    for data in a.data:  # one evaluate call per dataset: it matches one dataset per recipe
        summary = evaluate(models, [data], progress=False)
        for c in cks:
            m = summary["models"][c.stem]
            mean = m["baselines"]["mean_face"]["mouth_rmse"]
            rows.append({"checkpoint": c.stem, **budget(c), "data": m["data"],
                         "mouth_rmse": m["mouth_rmse"], "mouth_rmse_vs_mean_face": m["mouth_rmse"] / mean,
                         "mouth_open_r": m["mouth_open_r"], "open_range": m["open_range"],
                         "open_range_true": m["open_range_true"]})
    with open(out / f"{a.name}_learning_curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"# {a.name}: metrics against the training budget", "",
             "`python scripts/learning_curve.py --name " + a.name + " " +
             " ".join(f"--data {d}" for d in a.data) + f" --out {a.out} " +
             " ".join(str(c) for c in cks) + "`", "",
             "| checkpoint | preset | training data | post-filter K | updates | hours | data | "
             "mouth RMSE / mean face | r | opening range (truth) |", "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['preset']} | {r['trained_on']} | {r['post_filter']} | "
                     f"{r['updates']} | {r['hours']:.2f} | `{r['data']}` | "
                     f"{r['mouth_rmse_vs_mean_face']:.3f}x | {r['mouth_open_r']:.3f} | "
                     f"{r['open_range']:.3f} ({r['open_range_true']:.3f}) |")
    (out / f"{a.name}_learning_curve.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for data in sorted({r["data"] for r in rows}):
        sel = [r for r in rows if r["data"] == data]
        # a post-filter adds no training hours: draw it a little to the right of its network
        x = np.array([r["hours"] + (0.08 if r["post_filter"] else 0.0) for r in sel])
        for ax, key in zip(axes, ("mouth_rmse_vs_mean_face", "mouth_open_r")):
            y = np.array([r[key] for r in sel])
            ax.plot(x, y, "o-", label=data)
            for xi, yi, r in zip(x, y, sel):
                ax.annotate(r["checkpoint"], (xi, yi), fontsize=6, rotation=20,
                            xytext=(2, 3), textcoords="offset points")
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("mouth RMSE / static mean face (lower is better)")
    axes[1].set_ylabel("mouth-opening r (higher is better)")
    for ax in axes:
        ax.set_xlabel("cumulative training hours (2-core CPU)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{a.name}: what more CPU time gave (each point a committed checkpoint)")
    fig.tight_layout()
    fig.savefig(out / f"{a.name}_learning_curve.png", dpi=110)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}/{a.name}_learning_curve.csv, .md, .png")


if __name__ == "__main__":
    main()
