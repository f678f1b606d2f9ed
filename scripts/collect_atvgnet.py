"""Assemble an ATVGnet checkpoint from an AT-net run and a VG-net run, and keep their curves.

    python scripts/collect_atvgnet.py --atnet runs/atnet_small --vgnet runs/vgnet_small \
        --data tfrecords/grid_s1_atvgnet --out saved_models/checkpoints/atvgnet_small \
        --results docs/results/atvgnet/runs

The checkpoint folder (``atvgnet.json`` + ``atnet.weights.h5`` + ``generator.weights.h5`` +
``discriminator.weights.h5``, no optimiser state) is what ``python -m tf_talkface.export
--checkpoint FOLDER`` exports and what ``train_atvgnet --init-weights`` continues from (AT-net:
``FOLDER/atnet.weights.h5``; VG-net: ``FOLDER``). The runs' ``config.json``, ``history.csv``,
``metrics.json`` and ``loss.png`` are copied to ``--results`` as ``NAME_*``.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from tf_talkface.atvgnet_serving import write_checkpoint


def _run_summary(run: Path, prior: dict | None) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    with open(run / "history.csv") as f:
        epochs = list(csv.DictReader(f))
    steps = cfg["train"].get("steps_per_epoch") or 0
    updates = len(epochs) * steps
    hours = metrics.get("train_seconds", 0) / 3600
    prior = prior or {}
    return {"run": run.name, "preset": cfg["train"]["preset"], "epochs": len(epochs),
            "updates": updates + int(prior.get("updates", 0)),
            "hours": round(hours + float(prior.get("hours", 0)), 3),
            "batch_size": cfg["train"]["batch_size"], "test": metrics.get("test"),
            "init_weights": cfg["train"].get("init_weights"),
            "note": "updates/hours include the runs continued (--init-weights); wall-clock "
                    "hours on a shared 2-core CPU"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atnet", required=True, help="AT-net run folder")
    ap.add_argument("--vgnet", required=True, help="VG-net run folder")
    ap.add_argument("--data", required=True, help="the atvgnet dataset both were trained on")
    ap.add_argument("--out", required=True, help="checkpoint folder to write")
    ap.add_argument("--results", help="folder for the runs' curves and metrics")
    ap.add_argument("--which", choices=("best", "final"), default="best")
    ap.add_argument("--prior", help="an earlier checkpoint's atvgnet.json whose training budget "
                    "these runs continued")
    a = ap.parse_args()
    at, vg, data = Path(a.atnet), Path(a.vgnet), Path(a.data)
    net_at = json.loads((at / "config.json").read_text())["network"]
    net_vg = json.loads((vg / "config.json").read_text())["network"]
    at_keys = [k for k in net_at if k.startswith(("at_", "lstm_", "mfcc_", "n_pca"))]
    if any(net_at[k] != net_vg[k] for k in at_keys):
        print("note: the runs' configs differ in AT-net fields; the AT-net run's are kept")
    network = dict(net_vg, **{k: net_at[k] for k in at_keys})
    prior = json.loads(Path(a.prior).read_text())["training"] if a.prior else {}
    manifest = json.loads((data / "manifest.json").read_text())
    basis = json.loads((data / manifest["normalisation"].get("basis_file", "basis.json")).read_text())
    training = {"preset": json.loads((vg / "config.json").read_text())["train"]["preset"],
                "dataset": data.name, "atnet": _run_summary(at, prior.get("atnet")),
                "vgnet": _run_summary(vg, prior.get("vgnet"))}
    d = vg / a.which
    out = write_checkpoint(a.out, network, basis, manifest["normalisation"],
                           at / a.which / "atnet.weights.h5", d / "generator.weights.h5",
                           d / "discriminator.weights.h5", training)
    print(f"checkpoint {out}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB"
                                            for p in sorted(out.iterdir())))
    if a.results:
        res = Path(a.results)
        res.mkdir(parents=True, exist_ok=True)
        for run in (at, vg):
            for f in ("config.json", "history.csv", "metrics.json", "loss.png"):
                if (run / f).is_file():
                    shutil.copyfile(run / f, res / f"{run.name}_{f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
