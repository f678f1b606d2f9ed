"""Keras callbacks for GAN training (:class:`tf_talkface.models.gan.GANModel`; issue 14).

:class:`ImagePanels` writes TensorBoard image panels of a fixed batch every N training steps:
per clip, a grid with one row per shown frame and the columns example | target | generated |
attention | colour map (those the generator returns), so the attention and the colour ("motion")
map can be followed during training. The other callbacks of a run (BackupAndRestore,
TensorBoard scalars, time limit, ...) are ``train.py``'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

PANEL_COLUMNS = ("example", "target", "frames", "attention", "color")
"""Default columns: ``example`` (the example image), ``target`` (y), then generator outputs."""


def panel_grid(example: np.ndarray, target: np.ndarray | None, outputs: dict[str, np.ndarray],
               columns: Sequence[str] = PANEL_COLUMNS, frames: Sequence[int] | None = None
               ) -> np.ndarray:
    """One image per clip: rows = frames, columns = ``columns`` (missing ones skipped).

    Args:
        example: (B, H, W, 3) in [-1, 1]; target: (B, T, H, W, 3) in [-1, 1] or ``None``.
        outputs: generator outputs by name, (B, T, H, W, C); C = 1 maps (attention, in [0, 1])
            are shown grey, 3-channel ones as images in [-1, 1].
        frames: frame indices to show (default: up to 4 spread over T).

    Returns:
        float32 (B, rows * H, cols * W, 3) in [0, 1].
    """
    t = next(iter(outputs.values())).shape[1]
    idx = list(frames) if frames is not None else sorted(set(np.linspace(0, t - 1, min(t, 4)).astype(int)))

    def show(a: np.ndarray) -> np.ndarray:  # (B, H, W, C) -> (B, H, W, 3) in [0, 1]
        a = np.asarray(a, np.float32)
        if a.shape[-1] == 1:
            return np.repeat(np.clip(a, 0, 1), 3, -1)
        return np.clip((a + 1) / 2, 0, 1)

    rows = []
    for k in idx:
        cols = []
        for c in columns:
            if c == "example":
                cols.append(show(example))
            elif c == "target":
                if target is not None:
                    cols.append(show(target[:, k]))
            elif c in outputs:
                o = np.asarray(outputs[c])[:, k]
                if o.shape[1:3] != example.shape[1:3]:  # e.g. landmark attention at H/4
                    rep = example.shape[1] // o.shape[1]
                    o = np.repeat(np.repeat(o, rep, 1), rep, 2)
                cols.append(show(o))
        rows.append(np.concatenate(cols, 2))
    return np.concatenate(rows, 1)


class ImagePanels(keras.callbacks.Callback):
    """TensorBoard image panels of a fixed batch every ``every_n_steps`` training steps.

    The generator (``model.generator``, ``training=False``) runs on ``x`` and the panels of
    :func:`panel_grid` go to ``log_dir`` (``tf.summary.image`` named ``name``; step = the
    generator optimizer's iteration count, so a resumed run continues its steps). Also written
    at the end of training.

    Args:
        log_dir: TensorBoard folder (e.g. ``runs/NAME/tb/images``).
        x: a generator input batch (dict of arrays; needs ``example_image``); y: target frames
            (B, T, H, W, 3) or ``None``.
        every_n_steps: period in training steps.
        max_clips: clips shown (first of the batch).
        columns, frames: see :func:`panel_grid`.
    """

    def __init__(self, log_dir: str | Path, x: dict[str, Any], y: Any = None,
                 every_n_steps: int = 500, max_clips: int = 2,
                 columns: Sequence[str] = PANEL_COLUMNS, frames: Sequence[int] | None = None,
                 name: str = "panels") -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps {every_n_steps}: >= 1")
        self.log_dir = str(log_dir)
        self.x = {k: np.asarray(v)[:max_clips] for k, v in x.items()}
        self.y = None if y is None else np.asarray(y)[:max_clips]
        self.every = int(every_n_steps)
        self.columns = tuple(columns)
        self.frames = frames
        self.name = name
        self._writer = None
        self._last = -1

    def _step(self) -> int:
        opt = getattr(self.model, "g_optimizer", None) or getattr(self.model, "optimizer", None)
        return int(opt.iterations.numpy()) if opt is not None else 0

    def write(self, step: int) -> None:
        """Write the panels for ``step`` now."""
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        gen = getattr(self.model, "generator", self.model)
        out = gen(self.x, training=False)
        out = out if isinstance(out, dict) else {"frames": out}
        grid = panel_grid(self.x["example_image"], self.y,
                          {k: np.asarray(v) for k, v in out.items()}, self.columns, self.frames)
        with self._writer.as_default():
            tf.summary.image(self.name, grid, step=step, max_outputs=len(grid))
        self._writer.flush()
        self._last = step

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        step = self._step()
        if step % self.every == 0 and step != self._last:
            self.write(step)

    def on_train_end(self, logs: Any = None) -> None:
        step = self._step()
        if step != self._last:
            self.write(step)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
