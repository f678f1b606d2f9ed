"""How far the mouth moves on real speech, and whether the recording level changes it (issue 11).

    python scripts/level_robustness.py -m old_cnn=saved_models/cnn_nr_grid_s1 -m new=runs/cnn_nr_robust \
        --speech ../shared/data/speech --out docs/results/voices/level

For every speech file as it is, and at gains of -12, -6, +6 dB and with one added click (a single
full-scale sample in the middle, which moves the paper's peak normalisation), each model's
opening range (:func:`tf_talkface.metrics.opening_range`: 95th-5th percentile of the inner-lip
gap over the mouth width). Goals (issue 11): range >= 0.12 as the file is, and within 20% of that
at every other condition. Writes ``level_robustness.csv``, ``level_robustness.md`` and
``level_robustness.png`` (range per file and condition, one panel per model).
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONDITIONS = ("as is", "-12 dB", "-6 dB", "+6 dB", "click")


def condition(y: np.ndarray, name: str) -> np.ndarray:
    """The speech ``y`` (float32 mono) under one of :data:`CONDITIONS` (clipped to [-1, 1])."""
    y = np.asarray(y, np.float32).copy()
    if name == "click":
        y[len(y) // 2] = 1.0
        return y
    if name != "as is":
        y = y * np.float32(10 ** (float(name.split()[0]) / 20))
    return np.clip(y, -1.0, 1.0)


def main() -> None:
    from tf_talkface.audio.io import load_audio
    from tf_talkface.evaluate import load_eval_model, parse_model_arg
    from tf_talkface.metrics import opening_range

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", required=True, help="[NAME=]PATH (repeat)")
    ap.add_argument("--speech", default="../shared/data/speech", help="folder of speech files")
    ap.add_argument("--out", default="docs/results/voices/level")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in Path(a.speech).iterdir() if p.is_file() and p.suffix.lower() in
                   (".wav", ".flac", ".mp3", ".ogg", ".m4a"))
    rows = []
    models = [load_eval_model(path, name) for name, path in map(parse_model_arg, a.model)]
    for m in models:
        for f in files:
            y = load_audio(f, m.sample_rate)
            ys = [condition(y, c) for c in CONDITIONS]
            preds = m.predict(ys, batch=len(ys))
            r = [opening_range(p) for p in preds]
            worst = max(abs(v - r[0]) / r[0] for v in r[1:]) if r[0] > 0 else float("nan")
            rows.append({"model": m.name, "file": f.name, **{c: round(v, 4) for c, v in zip(CONDITIONS, r)},
                         "worst_rel_change": round(worst, 3),
                         "goal_met": bool(r[0] >= 0.12 and worst <= 0.2)})
            print(f"{m.name:>12} {f.name:<34} " + " ".join(f"{v:.3f}" for v in r) + f"  worst {worst:+.0%}")
    with open(out / "level_robustness.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["# Opening range on real speech, as is and at other levels", "",
             "Opening range = (95th - 5th percentile of the inner-lip gap) / mouth width; real GRID "
             "video scores 0.16-0.22. Goal: >= 0.12 as is, within 20% at -12/-6/+6 dB and with one "
             "full-scale click. Command: `python scripts/level_robustness.py " +
             " ".join(f"-m {x}" for x in a.model) + f" --speech {a.speech}`.", "",
             "| model | file | " + " | ".join(CONDITIONS) + " | worst change | goal |",
             "|---|---|" + "---|" * len(CONDITIONS) + "---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['file']} | " + " | ".join(f"{r[c]:.3f}" for c in CONDITIONS)
                     + f" | {r['worst_rel_change']:+.0%} | {'met' if r['goal_met'] else 'missed'} |")
    for m in models:
        mine = [r for r in rows if r["model"] == m.name]
        lines.append("")
        lines.append(f"**{m.name}**: mean range as is {np.mean([r['as is'] for r in mine]):.3f}; "
                     f"goal met on {sum(r['goal_met'] for r in mine)}/{len(mine)} files.")
    (out / "level_robustness.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == m.name]
        x = np.arange(len(CONDITIONS))
        for r in mine:
            ax.plot(x, [r[c] for c in CONDITIONS], "o-", label=r["file"][:18])
        ax.axhline(0.12, color="k", ls="--", lw=1)
        ax.axhspan(0.16, 0.22, color="g", alpha=0.1)
        ax.set_xticks(x, CONDITIONS)
        ax.set_title(m.name)
        ax.set_ylabel("opening range (gap / width)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Mouth opening range vs input level (green: real GRID video; dashed: goal)")
    fig.tight_layout()
    fig.savefig(out / "level_robustness.png", dpi=100)
    print(f"wrote {out}/level_robustness.csv, .md, .png")


if __name__ == "__main__":
    main()
