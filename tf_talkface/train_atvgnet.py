"""``python -m tf_talkface.train_atvgnet``: train ATVGnet's AT-net or VG-net (Chen et al., CVPR
2019) on a pixel dataset (``prepare --recipe atvgnet``) under ``tf.distribute``.

Examples (GRID s1, the ``small`` preset sized for a CPU; ``--preset paper`` is the original's
128-px network, the same command on LRW and a GPU)::

    python -m tf_talkface.train_atvgnet --part atnet --data tfrecords/grid_s1_atvgnet --out runs/atnet_small
    python -m tf_talkface.train_atvgnet --part vgnet --data tfrecords/grid_s1_atvgnet --preset small --out runs/vgnet_small --mixed-precision bfloat16

The two parts train separately, as in the original (``atnet.py``, ``vgnet.py``): AT-net maps MFCC
windows + the example frame's PCA landmarks to PCA landmarks (MSE, no GAN); VG-net maps the
example image + ground-truth landmarks to frames against the regression-based discriminator
(:class:`tf_talkface.models.atvgnet_gan.ATVGnetGAN`). Adam 2e-4, betas (0.5, 0.999), batch 16
(AT-net) / 10 (VG-net), as the original.

The run folder holds ``config.json`` (settings, the network sizes, the dataset manifest's hash),
``history.csv``, ``loss.png``, TensorBoard logs in ``tb/`` (VG-net: image panels example | target |
generated | attention | colour map), ``backup/`` while training (a killed run resumes when
restarted with the same command), and the weights without optimiser state: AT-net
``best/atnet.weights.h5`` (lowest validation loss) and ``final/atnet.weights.h5``; VG-net
``best/`` and ``final/`` with ``generator.weights.h5`` + ``discriminator.weights.h5`` (best =
lowest validation pixel loss). ``metrics.json``: the losses on the test split.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tf_talkface.console import os_error_message, quiet_tensorflow
from tf_talkface.train import (LossCurve, TrainDiverged, TrainError, chief_out, file_sha1,
                               get_strategy, nonfinite_history, nonfinite_weights, plot_history,
                               previous_best, time_limit, write_run_config)

quiet_tensorflow()

log = logging.getLogger("tf_talkface.train_atvgnet")

PARTS = ("atnet", "vgnet")
PAPER_BATCH = {"atnet": 16, "vgnet": 10}
"""The original's batch sizes (``atnet.py``, ``vgnet.py``)."""


@dataclass
class ATVGTrainConfig:
    """Settings of one ATVGnet training run (the CLI's flags).

    Attributes:
        data: an ``atvgnet`` dataset folder. part: ``atnet`` or ``vgnet``.
        preset: network sizes, ``paper`` (128 px, the original's channels) or ``small`` (see
            :mod:`tf_talkface.models.atvgnet_config`); ``gru_mode`` overrides VG-net's ConvGRU.
        out: run folder. epochs, steps_per_epoch: an epoch is ``steps_per_epoch`` batches of
            the repeated training data (``None``: one pass, one sample per clip).
        batch_size: per replica (``None``: 16 AT-net, 10 VG-net). lr, beta_1: Adam.
        time_limit_min: stop after the epoch that ends past this many minutes.
        init_weights: continue from weights: AT-net a ``.weights.h5``; VG-net a folder with
            ``generator.weights.h5`` (and ``discriminator.weights.h5``, loaded when present).
        mixed_precision: ``bfloat16`` (CPUs with AVX-512 BF16) or ``float16`` (GPUs).
        panel_every: VG-net TensorBoard image panels every N training steps (0 = off).
        val_batches: validation batches per epoch (the same samples every epoch).
        network_changes: fields of the preset's ``ATVGConfig`` to change (library use, e.g.
            tiny networks in tests).
    """

    data: str
    part: str = "atnet"
    preset: str = "small"
    out: str | None = None
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float = 2e-4
    beta_1: float = 0.5
    seed: int = 0
    strategy: str = "auto"
    mixed_precision: str | None = None
    time_limit_min: float | None = None
    init_weights: str | None = None
    gru_mode: str | None = None
    panel_every: int = 200
    val_batches: int = 8
    network_changes: dict | None = None

    def resolved(self) -> "ATVGTrainConfig":
        c = dataclasses.replace(self)
        if c.batch_size is None:
            c.batch_size = PAPER_BATCH.get(c.part, 16)
        if c.out is None:
            c.out = f"runs/{c.part}_{c.preset}"
        return c

    def check(self) -> None:
        """Raises :class:`TrainError` on settings that cannot work."""
        if self.part not in PARTS:
            raise TrainError(f"--part {self.part!r}: choose one of {', '.join(PARTS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise TrainError(f"--batch-size {self.batch_size}: at least 1")
        if self.epochs < 1 or (self.steps_per_epoch is not None and self.steps_per_epoch < 1):
            raise TrainError("--epochs and --steps-per-epoch: at least 1")
        if not (self.lr > 0):
            raise TrainError(f"--lr {self.lr}: positive")
        if self.init_weights and not Path(self.init_weights).exists():
            raise TrainError(f"--init-weights {self.init_weights}: not found")

    def network(self):
        """The :class:`ATVGConfig` of this run."""
        from tf_talkface.models.atvgnet_config import ATVGConfig

        changes = dict(self.network_changes or {})
        if self.gru_mode:
            changes["gru_mode"] = self.gru_mode
        return ATVGConfig.preset(self.preset, **changes)


class _BestParts:
    """Keras callback: save the weights (no optimiser state) to ``best/`` when ``monitor``
    improves, and to ``final/`` after every epoch (so a stopped run leaves usable weights)."""

    @staticmethod
    def make(out: Path, monitor: str, best: float | None, save):
        import keras

        class _CB(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = float("inf") if best is None else best

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                save(self.model, out / "final")
                v = logs.get(monitor)
                if v is not None and float(v) < self.best:
                    self.best = float(v)
                    save(self.model, out / "best")

        return _CB()


def _save_atnet(model, folder: Path) -> None:
    # a compiled model's save_weights also writes the optimizer state (2x the weights): save a
    # copy of the network without one
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "atnet.tmp.weights.h5"
    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    bare.save_weights(tmp)
    os.replace(tmp, folder / "atnet.weights.h5")


def _save_gan(model, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_parts(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _datasets(cfg: ATVGTrainConfig, net_cfg, global_batch: int, n_val: int):
    from tf_talkface.data.pixels import atnet_dataset, vgnet_dataset

    repeat = cfg.steps_per_epoch is not None
    if cfg.part == "atnet":
        train = atnet_dataset(cfg.data, "train", global_batch, net_cfg.frames, training=True,
                              seed=cfg.seed)
        val = atnet_dataset(cfg.data, "val", global_batch, net_cfg.frames, training=False,
                            seed=cfg.seed + 1, deterministic=True) if n_val else None
    else:
        kw = dict(frames=net_cfg.frames, image_size=net_cfg.image_size)
        train = vgnet_dataset(cfg.data, "train", global_batch, training=True, seed=cfg.seed, **kw)
        val = vgnet_dataset(cfg.data, "val", global_batch, training=False, seed=cfg.seed + 1,
                            deterministic=True, **kw) if n_val else None
    if repeat:
        train = train.repeat()
    if val is not None:
        val = val.take(cfg.val_batches)
    return train, val


def train_atvgnet(cfg: ATVGTrainConfig, verbose: int | str = "auto") -> dict:
    """Train one ATVGnet part; library entry point of the CLI.

    Returns the dict written to ``metrics.json`` (last losses, epochs, seconds, test losses).

    Raises:
        TrainError: bad settings or a different run in ``out``. TrainDiverged: NaN/Inf losses
        or weights (no weights kept). DatasetError: missing or non-pixel dataset.
    """
    import keras
    import tensorflow as tf

    from tf_talkface.data.manifest import load_manifest, write_json_atomic
    from tf_talkface.data.pixels import check_pixel_dataset

    cfg = cfg.resolved()
    cfg.check()
    strategy = get_strategy(cfg.strategy)
    manifest = load_manifest(cfg.data)
    check_pixel_dataset(manifest, cfg.data, need_pca=cfg.part == "atnet")
    net_cfg = cfg.network()
    out = chief_out(Path(cfg.out), cfg.strategy)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, {"train": dataclasses.asdict(cfg), "network": net_cfg.to_dict(),
                           "manifest_sha1": file_sha1(Path(cfg.data) / "manifest.json"),
                           "recipe": manifest["recipe"]})

    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if cfg.mixed_precision == "bfloat16" else "mixed_float16")
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    n_val = manifest["counts"].get("val", 0)
    train_ds, val_ds = _datasets(cfg, net_cfg, global_batch, n_val)

    with strategy.scope():
        if cfg.part == "atnet":
            from tf_talkface.models.atnet import build_atnet, compile_atnet

            model = build_atnet(net_cfg)
            compile_atnet(model, lr=cfg.lr, beta_1=cfg.beta_1)
            save, monitor = _save_atnet, "val_loss" if val_ds is not None else "loss"
            if cfg.init_weights and not (out / "backup").exists():
                model.load_weights(cfg.init_weights)
        else:
            from tf_talkface.models.atvgnet_gan import atvgnet_optimizers, build_atvgnet_gan

            model = build_atvgnet_gan(net_cfg)
            model.compile(*atvgnet_optimizers(cfg.lr, cfg.beta_1))
            save, monitor = _save_gan, "val_g_pix" if val_ds is not None else "g_pix"
            if cfg.init_weights and not (out / "backup").exists():
                d_path = Path(cfg.init_weights) / "discriminator.weights.h5"
                model.load_parts(cfg.init_weights, discriminator=d_path.is_file())

    csv_path = out / "history.csv"
    best, _ = previous_best(csv_path, monitor)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        _BestParts.make(out, monitor, best, save),
        keras.callbacks.CSVLogger(str(csv_path), append=True),
        keras.callbacks.TensorBoard(str(out / "tb"), write_graph=False),
        LossCurve.make(csv_path, out / "loss.png"),
    ]
    if cfg.part == "vgnet" and cfg.panel_every:
        from tf_talkface.gan_callbacks import ImagePanels

        x_show, y_show = next(iter(val_ds if val_ds is not None else train_ds))
        callbacks.append(ImagePanels(str(out / "tb" / "images"), x_show, y_show,
                                     every_n_steps=cfg.panel_every))
    if cfg.time_limit_min:
        callbacks.append(time_limit(cfg.time_limit_min))
    t0 = time.time()
    hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs,
                     steps_per_epoch=cfg.steps_per_epoch, callbacks=callbacks, verbose=verbose)
    seconds = time.time() - t0
    bad = nonfinite_history(hist.history) or nonfinite_weights(model)
    if bad:
        for f in ("best", "final"):
            shutil.rmtree(out / f, ignore_errors=True)
        shutil.rmtree(out / "backup", ignore_errors=True)
        raise TrainDiverged(f"{out}: training diverged ({bad}); no weights were kept. "
                            "Lower --lr or check the dataset")
    results = {"history_last": {k: float(v[-1]) for k, v in hist.history.items()},
               "epochs_run": len(next(iter(hist.history.values()), [])),
               "train_seconds": round(seconds, 1), "replicas": replicas,
               "global_batch": global_batch, "part": cfg.part, "preset": cfg.preset}
    if manifest["counts"].get("test", 0):
        from tf_talkface.data.pixels import atnet_dataset, vgnet_dataset

        if cfg.part == "atnet":
            test_ds = atnet_dataset(cfg.data, "test", global_batch, net_cfg.frames,
                                    training=False, seed=123, deterministic=True)
        else:
            test_ds = vgnet_dataset(cfg.data, "test", global_batch, net_cfg.frames,
                                    net_cfg.image_size, training=False, seed=123,
                                    deterministic=True)
        results["test"] = {k: float(v) for k, v in
                           model.evaluate(test_ds, verbose=0, return_dict=True).items()}
    write_json_atomic(out / "metrics.json", results)
    plot_history(csv_path, out / "loss.png", title=f"{cfg.part} ({cfg.preset})")
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tf_talkface.train_atvgnet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="an atvgnet dataset (prepare --recipe atvgnet)")
    p.add_argument("--part", choices=PARTS, required=True)
    p.add_argument("--preset", choices=("paper", "small"), default="small")
    p.add_argument("--out", help="run folder (default: runs/<part>_<preset>)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--batch-size", type=int, help="per replica (default 16 atnet, 10 vgnet)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta-1", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", choices=("auto", "mirrored", "multiworker", "one_device"),
                   default="auto")
    p.add_argument("--mixed-precision", nargs="?", const="float16", choices=("float16", "bfloat16"))
    p.add_argument("--time-limit", type=float, dest="time_limit_min", metavar="MIN")
    p.add_argument("--init-weights", help="atnet: a .weights.h5; vgnet: a folder with "
                   "generator.weights.h5 [+ discriminator.weights.h5]")
    p.add_argument("--gru-mode", choices=("time", "original"),
                   help="vgnet ConvGRU: over time (default) or the original's per-frame step")
    p.add_argument("--panel-every", type=int, default=200,
                   help="vgnet: TensorBoard image panels every N steps (0 = off)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    kw = {k: v for k, v in vars(args).items() if k != "quiet"}
    from tf_talkface.data.manifest import DatasetError

    try:
        res = train_atvgnet(ATVGTrainConfig(**kw), verbose=0 if args.quiet else "auto")
    except (TrainError, DatasetError) as e:
        print(f"train_atvgnet: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, TrainDiverged) else 2
    except OSError as e:
        print(f"train_atvgnet: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    print(json.dumps({k: res[k] for k in ("epochs_run", "train_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
