"""Copy the small results of training runs into docs/results/ and write a Markdown table.

    python scripts/collect_results.py runs/lstm_d1_c3 runs/cnn_nr runs/cnn_tc [--weights saved_models/checkpoints]

Per run NAME: NAME_metrics.json, NAME_config.json, NAME_history.csv, NAME_loss.png, and a row of
docs/results/training.md (test split, beside the mean-face baseline). With --weights, the best
checkpoint's weights (no optimizer state) go to WEIGHTS/NAME.weights.h5 + NAME.json (the run's
config, test metrics, dataset provenance and mean face) + for CNN models NAME.basis.json (the
dataset's PCA basis), small enough to commit, so `python -m tf_talkface.export --checkpoint
WEIGHTS/NAME.json` works without the run or the dataset.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def training_budget(run: Path, cfg: dict, metrics: dict, weights: Path) -> dict:
    """Updates and wall-clock hours of this run plus those of the checkpoint it started from
    (``--init-weights``: a ``NAME.weights.h5`` or ``runs/NAME/...`` whose ``NAME.json`` in the
    weights folder carries its own budget)."""
    import csv
    import math

    with open(run / "history.csv") as f:
        epochs = sum(1 for _ in csv.DictReader(f))
    manifest = json.loads((run / "manifest.json").read_text())
    steps = cfg.get("steps_per_epoch") or math.ceil(manifest["counts"]["train"] / cfg["batch_size"])
    updates, hours = epochs * steps, metrics.get("train_seconds", 0.0) / 3600
    init = cfg.get("init_weights")
    chain = []
    if init:
        p = Path(init)
        prev_name = p.name.replace(".weights.h5", "") if p.name.endswith(".weights.h5") else p.parent.name
        prev = weights / f"{prev_name}.json"
        if prev.is_file():
            b = json.loads(prev.read_text()).get("training_budget", {})
            updates += b.get("updates", 0)
            hours += b.get("hours", 0.0)
            chain = b.get("chain", []) + [prev_name]
    return {"updates": int(updates), "hours": round(hours, 3), "chain": chain,
            "note": "wall-clock hours on a shared 2-core CPU, this run and the runs it continued"}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--weights", help="folder for the best weights (e.g. saved_models/checkpoints)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in map(Path, a.runs):
        name = r.name
        for src, dst in (("metrics.json", "metrics.json"), ("config.json", "config.json"),
                         ("history.csv", "history.csv"), ("loss.png", "loss.png")):
            if (r / src).is_file():
                shutil.copyfile(r / src, out / f"{name}_{dst}")
        m = json.loads((r / "metrics.json").read_text())
        cfg = json.loads((r / "config.json").read_text())["train"]
        t = m.get("test", {})
        if t:
            rows.append((name, cfg, m, t))
        if a.weights and (r / "best.keras").is_file():
            import keras
            from tf_talkface.models.registry import custom_objects
            model = keras.saving.load_model(r / "best.keras", custom_objects=custom_objects())
            net = model.model if hasattr(model, "w_feat") else model
            w = Path(a.weights)
            w.mkdir(parents=True, exist_ok=True)
            config = net.get_config()
            if isinstance(config.get("dtype"), dict):  # trained under mixed precision: serve float32
                config["dtype"] = "float32"
            clone = net.__class__.from_config(copy.deepcopy(config))  # uncompiled; from_config pops keys
            clone.set_weights(net.get_weights())
            clone.save_weights(w / f"{name}.weights.h5")
            from tf_talkface.export import dataset_summary, neutral_face_of
            run_cfg = json.loads((r / "config.json").read_text())
            manifest = json.loads((r / "manifest.json").read_text())
            (w / f"{name}.json").write_text(json.dumps({
                "train": cfg, "model_config": config, "test": t,
                "training_budget": training_budget(r, cfg, m, w),
                "dataset": dataset_summary(manifest, run_cfg["manifest_sha1"], Path(cfg["data"]).name),
                "neutral_face": neutral_face_of(manifest).round(6).tolist()}, indent=1))
            if cfg["model"] != "lstm":  # the PCA basis travels with CNN weights (export needs it)
                shutil.copyfile(Path(cfg["data"]) / "basis.json", w / f"{name}.basis.json")
    lines = ["# Training results (GRID s1, test split)", "",
             "RMSE/LMD in the dataset's normalised units (2018: fraction of the 600-px canvas; 2020: "
             "unit-norm Procrustes frame). `mean face` = the training split's mean landmarks. "
             "`r` = Pearson correlation of predicted vs true mouth opening over time (mean over clips).", "",
             "| run | model | epochs | clips/frames | mouth RMSE | all RMSE | LMD | r | mean face mouth RMSE | mean face all RMSE | mean face LMD |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    # rows of earlier runs (other sessions) stay; a run collected again replaces its row
    new_names = {name for name, *_ in rows}
    old_md = out / "training.md"
    if old_md.is_file():
        for line in old_md.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if (line.startswith("| ") and len(cells) == 11 and cells[0] not in ("run", *new_names)
                    and not set(cells[0]) <= set("-")):
                lines.append(line)
    for name, cfg, m, t in rows:
        mo, mf = t["model"], t["mean_face"]
        desc = cfg["model"] + (" NR" if cfg.get("noise") else "") + (
            f" d{cfg['delay']} c{cfg['context']}" if cfg["model"] == "lstm" else "") + (
            f", preset {cfg.get('preset') or 'paper'}")
        lines.append(f"| {name} | {desc} | {m['epochs_run']} | {t['n_clips']}/{t['n_frames']} | "
                     f"{mo['mouth_rmse']:.5f} | {mo['all_rmse']:.5f} | {mo['lmd']:.5f} | {mo['mouth_open_r']:.3f} | "
                     f"{mf['mouth_rmse']:.5f} | {mf['all_rmse']:.5f} | {mf['lmd']:.5f} |")
    (out / "training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
