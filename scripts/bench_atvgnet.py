"""ATVGnet VG-net speed: GAN training frames/s and generation fps, float32 vs mixed bfloat16,
side by side in one run (issue 14).

    python scripts/bench_atvgnet.py [SPEC ...] [--steps 4] [--warmup 2] [--frames 16]
        [--gen-frames 32] [--gen-repeats 5] [--gen-jit] [--policies float32,mixed_bfloat16]
        [--jit auto]
        [--out FILE.json]

SPEC is a preset name with optional field changes, e.g. ``paper``, ``small``,
``small:ngf=16,n_res_blocks=2`` (default: ``paper small``). For each spec and precision policy:

* training: :class:`~tf_talkface.models.atvgnet_gan.ATVGnetGAN` (VG-net + regression
  discriminator, both optimiser steps, ConvGRU over time) ``fit`` on one synthetic batch
  repeated; B = 1 for ``paper`` (128 px), 2 otherwise (``--batch`` overrides), T = ``--frames``.
  After ``--warmup`` steps (tracing/compiling), the fastest of ``--steps`` steps gives
  frames/s = B * T / step (the fastest, not the median: on a shared machine the other
  processes only ever slow a step down; the median is kept in the JSON);
* generation: VG-net alone, ``training=False``, one clip of ``--gen-frames`` frames (B = 1,
  example encoded once per clip, as ``generate`` runs it) in a ``tf.function``; fastest of
  ``--gen-repeats`` calls after one warm call -> fps;
* accuracy: the generator loss after the timed steps (same initial weights and batch), per
  policy. (A forward-pass difference at initialisation says little: with N(0, 0.02) weights and
  inference-mode BatchNorm the last layers see tiny activations.)

The machine is shared (other training runs may hold the cores): the load average is printed
with the results, and the ratios (bf16 / fp32, small / paper) are more stable than the absolute
numbers.

Measured on this 2-core CPU (AVX-512 BF16) while two other trainings ran (load average ~4),
``python scripts/bench_atvgnet.py paper small --steps 6 --gen-repeats 6`` (no XLA, the Keras
default on a CPU; ``--jit true`` made training 3-5x slower):

    spec    policy          train frames/s  gen fps
    paper   float32                    9.0     25.8
    paper   mixed_bfloat16             7.7     36.2
    small   float32                   94.2    356.7
    small   mixed_bfloat16            94.1    330.2

(best step; the median steps gave paper 5.2 / 6.5 and small 69 / 90 frames/s: under this load
the training ratio bf16/fp32 moved between 0.85 and 1.25 from run to run, generation's stayed at
1.3-1.4x for paper and ~0.9x for small). The ``small`` preset (64 px, ngf 32, ConvGRU 256, 4
residual blocks, ndf 32) was chosen from runs of variants on the same load: 9 residual blocks
instead of 4 trained at 0.74x (83 vs 112 frames/s), ngf 16 / GRU 128 / 9 blocks at 1.4x (156)
but with 8-channel final layers; GRU 512 (the paper's ratio to a 64-px input) at ~0.3x.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_spec(spec: str):
    """``name[:k=v,...]`` -> ATVGConfig."""
    from tf_talkface.models.atvgnet_config import ATVGConfig

    name, _, rest = spec.partition(":")
    changes = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        changes[k] = float(v) if k == "dropout" else (v if k == "gru_mode" else int(v))
    return ATVGConfig.preset(name, **changes)


def _batch(cfg, b: int, t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    h = cfg.image_size
    x = {"example_image": rng.uniform(-1, 1, (b, h, h, 3)).astype(np.float32),
         "example_landmarks": (0.3 * rng.standard_normal((b, 136))).astype(np.float32),
         "landmarks": (0.3 * rng.standard_normal((b, t, 136))).astype(np.float32)}
    y = rng.uniform(-1, 1, (b, t, h, h, 3)).astype(np.float32)
    return x, y


def bench_train(cfg, policy: str, b: int, t: int, steps: int, warmup: int, jit) -> dict:
    import keras
    import tensorflow as tf

    from tf_talkface.models.atvgnet_gan import build_atvgnet_gan

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    gan = build_atvgnet_gan(cfg)
    gan.compile(jit_compile=jit)
    x, y = _batch(cfg, b, t)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    stamps: list[float] = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    hist = gan.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[Stamp()])
    first = stamps[0] - t0
    dts = np.diff(stamps[warmup - 1:]) if warmup >= 1 else np.diff([t0] + stamps)
    step = float(min(dts))
    keras.mixed_precision.set_global_policy("float32")
    return {"step_s": step, "median_step_s": float(statistics.median(dts)),
            "frames_per_s": b * t / step, "first_step_s": first, "batch": b,
            "frames": t, "g_params": gan.generator.count_params(),
            "d_params": gan.discriminator.count_params(),
            "g_loss": float(hist.history["g_loss"][-1])}


def bench_generate(cfg, policy: str, t: int, repeats: int, jit: bool = False) -> dict:
    import keras
    import tensorflow as tf

    from tf_talkface.models.vgnet import build_vgnet

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    net = build_vgnet(cfg)
    x, _ = _batch(cfg, 1, t, seed=1)
    x = {k: tf.constant(v) for k, v in x.items()}
    fn = tf.function(lambda inp: net(inp, training=False)["frames"], jit_compile=jit)
    fn(x).numpy()
    dts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x).numpy()
        dts.append(time.perf_counter() - t0)
    step = float(min(dts))
    keras.mixed_precision.set_global_policy("float32")
    return {"clip_s": step, "median_clip_s": float(statistics.median(dts)), "fps": t / step,
            "frames": t}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="*", default=["paper", "small"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--batch", type=int, help="training batch (default 1 at >= 128 px, else 2)")
    p.add_argument("--gen-frames", type=int, default=32)
    p.add_argument("--gen-repeats", type=int, default=5)
    p.add_argument("--policies", default="float32,mixed_bfloat16")
    p.add_argument("--jit", default="auto", choices=("auto", "true", "false"))
    p.add_argument("--gen-jit", action="store_true", help="XLA-compile the generation function")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--no-generate", action="store_true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit]
    policies = args.policies.split(",")
    results = {}
    for spec in args.specs:
        cfg = parse_spec(spec)
        b = args.batch or (1 if cfg.image_size >= 128 else 2)
        res: dict = {"config": cfg.to_dict()}
        for policy in policies:
            r: dict = {}
            if not args.no_generate:
                r["generate"] = bench_generate(cfg, policy, args.gen_frames, args.gen_repeats,
                                               args.gen_jit)
            if not args.no_train:
                r["train"] = bench_train(cfg, policy, b, args.frames, args.steps, args.warmup, jit)
            res[policy] = r
            print(spec, policy, json.dumps(r), f"load {os.getloadavg()[0]:.2f}", flush=True)
        results[spec] = res
    print("\nspec                     policy           train frames/s   gen fps   g_loss   vs first policy (train, gen)")
    for spec, res in results.items():
        base = res.get(policies[0], {})
        for policy in policies:
            r = res[policy]
            tr = r.get("train", {}).get("frames_per_s", float("nan"))
            gn = r.get("generate", {}).get("fps", float("nan"))
            rt = tr / base.get("train", {}).get("frames_per_s", float("nan"))
            rg = gn / base.get("generate", {}).get("fps", float("nan"))
            gl = r.get("train", {}).get("g_loss", float("nan"))
            print(f"{spec:24s} {policy:16s} {tr:14.1f} {gn:9.1f} {gl:8.2f}   {rt:.2f}, {rg:.2f}")
    if len(results) > 1:
        names = list(results)
        for policy in policies:
            a, b_ = results[names[0]][policy], results[names[-1]][policy]
            for kind, key in (("train", "frames_per_s"), ("generate", "fps")):
                if kind in a and kind in b_:
                    print(f"{names[-1]} / {names[0]} {kind} ({policy}): "
                          f"{b_[kind][key] / a[kind][key]:.1f}x")
    print(f"load average {os.getloadavg()}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
