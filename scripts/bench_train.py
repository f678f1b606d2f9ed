"""Training throughput, float32 vs mixed bfloat16, side by side in one run (issue 11).

    python scripts/bench_train.py [--steps 20] [--repeats 3] [--batch 16] [--out docs/results/performance/bench_train.json]

For each model (lstm d1 c3 with the linear read-out, cnn, cnn NR) and each precision policy
(``float32``, ``mixed_bfloat16``; this CPU has AVX-512 BF16), the same model (same initial
weights) takes ``--steps`` optimiser steps on the same synthetic batches of GRID-sized clips
(75 frames = 3 s); the policies alternate ``--repeats`` times so load changes hit both. Printed
per model: median ms/step of each policy, the speed ratio, and accuracy: the largest difference
of the outputs of one forward pass (same weights) and the loss after the steps, bf16 vs fp32.
The train CLI keeps float32 unless bf16 is both faster and as accurate (``--mixed-precision
bfloat16`` opts in).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _data(kind: str, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    t = 75
    if kind == "lstm":
        x = rng.normal(0, 1, (batch, t, 512)).astype(np.float32)
        y = rng.uniform(0.3, 0.7, (batch, t, 136)).astype(np.float32)
        return x, y
    from tf_talkface.models.cnn import padded_length
    x = (0.1 * rng.normal(0, 1, (batch, padded_length(t)))).astype(np.float32)
    y = (0.01 * rng.normal(0, 1, (batch, t, 6))).astype(np.float32)
    return x, y


def _build(kind: str, policy: str, weights=None):
    import keras

    from tf_talkface.models.noise_resilient import DimWeightedLoss, NoiseResilientModel
    from tf_talkface.models.registry import build_model

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    if kind == "lstm":
        net = build_model("lstm", input_dim=512, readout="linear", target_mean=[0.5] * 136,
                          target_std=[0.01] * 136)
        fit = net
        net.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=DimWeightedLoss("mse", [1.0] * 136))
    else:
        net = build_model("cnn", target_mean=[0.0] * 6, target_std=[0.01] * 6)
        if kind == "cnn_nr":
            fit = NoiseResilientModel(net)
            fit.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5))
        else:
            fit = net
            net.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5),
                        loss=DimWeightedLoss("l1", net.loss_dim_weights))
    if weights is not None:
        net.set_weights(weights)
    return fit, net


def measure(kind: str, policy: str, steps: int, batch: int, weights):
    """(ms per step, loss after the steps, outputs of one forward pass before training)."""
    import tensorflow as tf

    fit, net = _build(kind, policy, weights)
    x, y = _data(kind, batch, 0)
    out0 = np.asarray(net(x[:2], training=False), np.float32)
    xs = (x, x) if kind == "cnn_nr" else x
    ds = tf.data.Dataset.from_tensors((xs, y)).repeat()
    fit.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm up
    t0 = time.perf_counter()
    h = fit.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    ms = (time.perf_counter() - t0) * 1000 / steps
    return ms, float(h.history["loss"][-1]), out0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--models", default="lstm,cnn,cnn_nr")
    ap.add_argument("--out", default="docs/results/performance/bench_train.json")
    a = ap.parse_args()
    import keras

    results = {}
    for kind in a.models.split(","):
        _, net = _build(kind, "float32")
        w0 = net.get_weights()
        times = {"float32": [], "mixed_bfloat16": []}
        losses, outs = {}, {}
        for _ in range(a.repeats):
            for policy in times:
                ms, loss, out = measure(kind, policy, a.steps, a.batch, w0)
                times[policy].append(ms)
                losses[policy], outs[policy] = loss, out
        keras.mixed_precision.set_global_policy("float32")
        med = {p: float(np.median(v)) for p, v in times.items()}
        scale = float(np.abs(outs["float32"]).max())
        results[kind] = {
            "ms_per_step": med, "all_ms": times,
            "speedup_bf16": med["float32"] / med["mixed_bfloat16"],
            "max_output_diff": float(np.abs(outs["float32"] - outs["mixed_bfloat16"]).max()),
            "output_scale": scale,
            "loss_after_steps": losses, "batch": a.batch, "steps": a.steps}
        r = results[kind]
        print(f"{kind:>7}: fp32 {med['float32']:.0f} ms/step, bf16 {med['mixed_bfloat16']:.0f} "
              f"ms/step -> bf16 {r['speedup_bf16']:.2f}x; forward diff {r['max_output_diff']:.2e} "
              f"(outputs up to {scale:.3g}); loss after {a.steps} steps fp32 "
              f"{losses['float32']:.4g} bf16 {losses['mixed_bfloat16']:.4g}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
