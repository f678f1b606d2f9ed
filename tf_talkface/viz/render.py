"""Landmark sequences to frames, mp4 videos with sound, and PNGs, in any style.

One view (2D) or one set of 3D axis limits is fitted over the whole sequence, each frame is
drawn by its style (``"painted"``: :mod:`tf_talkface.viz.painted`, ``"lines"``:
:func:`tf_talkface.viz.draw.draw_lines`, ``"3d"``: :mod:`tf_talkface.viz.draw3d`) and the frames
go to the one mp4 writer (:func:`tf_talkface.viz.video_io.write_video`). Conventions:
:mod:`tf_talkface.viz.draw`.

Example::

    from tf_talkface.viz.render import render_video, render_side_by_side
    render_video(pred, "pred.mp4", audio="speech.wav")                  # painted, 512x512
    render_side_by_side([("ground truth", gt), ("predicted", pred)], "cmp.mp4",
                        audio=y, sample_rate=8000, frame_numbers=True)  # lines, 2 x 384x384
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from tf_talkface.config import FPS
from tf_talkface.viz.draw import (
    LINES_BACKGROUND, View, check_landmarks, check_size, check_style, draw_lines, empty_frame,
    fit_view, put_text_centred, valid_frames)
from tf_talkface.viz.draw3d import azimuth_at, draw_3d, fit_box3d
from tf_talkface.viz.painted import PALETTE, draw_painted
from tf_talkface.viz.video_io import write_png, write_video

__all__ = ["render_frames", "render_video", "render_side_by_side", "save_frame_png"]


def _fit_for(arrays: Sequence[np.ndarray], style: str, size, margin: float = 0.1):
    """View (2D styles) or 3D limits fitted over all frames of all ``arrays``; ``None`` when no
    frame is drawable."""
    if not any(valid_frames(a).any() for a in arrays):
        return None
    if style == "3d":
        return fit_box3d(arrays)
    return fit_view(arrays, size, margin, style=style)


def _background(style: str):
    return PALETTE["background"] if style == "painted" else LINES_BACKGROUND


def _draw_frame(p: np.ndarray, style: str, size, fit, index: int, fps: float) -> np.ndarray:
    if fit is None or not np.all(np.isfinite(p)):
        return empty_frame(size, _background(style))
    if style == "3d":
        return draw_3d(p, azimuth_at(index, fps), size, limits=fit)
    px = fit.to_pixels(p)
    return draw_painted(px, size) if style == "painted" else draw_lines(px, size)


def _render_one(p: np.ndarray, style: str, size, fit, index: int, fps: float, title) -> np.ndarray:
    img = _draw_frame(p, style, size, fit, index, fps)
    if title:
        put_text_centred(img, title, size[1] * 0.05, (40, 40, 40), max_scale=0.7)
    return img


def _frames(a: np.ndarray, style: str, size, fit, title, fps: float) -> Iterator[np.ndarray]:
    for f in range(a.shape[0]):
        yield _render_one(a[f], style, size, fit, f, fps, title)


def _prepare(landmarks, style: str, size, name: str = "landmarks"):
    a = check_landmarks(landmarks, name)
    check_style(style)
    size = check_size(size)
    if style == "3d" and a.shape[2] != 3:
        raise ValueError(
            f"style '3d' needs 3D landmarks (frames, 68, 3); {name} has shape {a.shape} (D = "
            f"{a.shape[2]}); use style 'painted' or 'lines' for 2D landmarks")
    return a, size


def render_frames(landmarks: np.ndarray, style: str = "painted", size: tuple[int, int] = (512, 512),
                  view: View | None = None, title: str | None = None,
                  fps: float = FPS) -> Iterator[np.ndarray]:
    """Render every frame of a landmark sequence (lazily, one image per landmark frame).

    Args:
        landmarks: ``(F, 68, D)`` real array, D = 2 or 3, any units (see
            :mod:`tf_talkface.viz.draw`).
        style: one of :data:`~tf_talkface.viz.draw.STYLES`.
        size: ``(width, height)`` of each image in pixels.
        view: the 2D :class:`~tf_talkface.viz.draw.View` to use (its ``size`` must equal
            ``size``); default ``fit_view([landmarks], size, 0.1, style=style)`` over all frames
            (for ``"painted"`` the forehead is included: fit your own view with
            ``style="painted"`` too, or the top of the head may be cut off). Ignored by the
            ``"3d"`` style, which fits fixed cubic axis limits over all frames instead.
        title: ASCII text drawn at the top of every frame.
        fps: frames per second, only used for the ``"3d"`` camera sweep
            (:func:`~tf_talkface.viz.draw3d.azimuth_at`).

    Returns:
        iterator of F ``uint8`` ``(H, W, 3)`` RGB images; frames with NaN are neutral frames
        with a note.

    Raises:
        ValueError (at call time, not on iteration): bad shape (not ``(F, 68, D)``, D not in
        {2, 3}, F == 0), unknown style, bad size, or style ``"3d"`` with D != 3.
    """
    a, size = _prepare(landmarks, style, size)
    if view is not None and style != "3d":
        if tuple(view.size) != size:
            raise ValueError(f"view.size {tuple(view.size)} differs from size {size}")
        fit = view
    else:
        fit = _fit_for([a], style, size)
    return _frames(a, style, size, fit, title, fps)


def render_video(landmarks: np.ndarray, path: str | os.PathLike, audio=None,
                 sample_rate: int | None = None, style: str = "painted",
                 size: tuple[int, int] = (512, 512), fps: float = FPS, progress: bool = False,
                 title: str | None = None) -> Path:
    """Render a landmark sequence to an mp4 with sound: :func:`render_frames` (one view fitted
    over the whole sequence) + :func:`~tf_talkface.viz.video_io.write_video`.

    Args:
        landmarks: ``(F, 68, D)``, D = 2 or 3 (3 for ``style="3d"``), one frame per 1/fps s.
        path: ``.mp4`` destination (written atomically).
        audio / sample_rate: see :func:`~tf_talkface.viz.video_io.write_video` (a path, or a
            waveform + its rate in Hz).
        style: one of :data:`~tf_talkface.viz.draw.STYLES`.
        size: ``(width, height)`` in pixels (even sizes avoid padding).
        fps: frames per second of the video (the landmarks' rate; 25 in this library).
        progress: tqdm progress bar.
        title: optional ASCII text at the top of every frame.

    Returns:
        ``Path(path)``: an mp4 of exactly F frames (F / fps seconds).

    Raises:
        ValueError: see :func:`render_frames` and :func:`~tf_talkface.viz.video_io.write_video`.
        tf_talkface.audio.io.AudioError: unreadable audio file.
    """
    frames = render_frames(landmarks, style, size, title=title, fps=fps)
    return write_video(path, frames, fps=fps, audio=audio, sample_rate=sample_rate,
                       n_frames=len(landmarks), progress=progress)


def _side_by_side_frames(arrays, titles, style, size, fits, frame_numbers, fps):
    import cv2

    gens = [_frames(a, style, size, fit, t, fps) for a, t, fit in zip(arrays, titles, fits)]
    for f, imgs in enumerate(zip(*gens)):
        img = np.concatenate(imgs, axis=1)
        for k in range(1, len(imgs)):  # thin grey separator between panels
            img[:, k * size[0] - 1: k * size[0] + 1] = (150, 150, 150)
        if frame_numbers:
            h = img.shape[0]
            s = 0.45 * min(size) / 384
            cv2.putText(img, f"frame {f}  {f / fps:.2f} s", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX,
                        s, (70, 70, 70), 1, cv2.LINE_AA)
        yield img


def render_side_by_side(panels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike,
                        audio=None, sample_rate: int | None = None, style: str = "lines",
                        size: tuple[int, int] = (384, 384), shared_view: bool = True,
                        frame_numbers: bool = False, progress: bool = False,
                        fps: float = FPS) -> Path:
    """Several landmark sequences next to each other in one mp4, each titled at the top
    (e.g. ``[("ground truth", gt), ("predicted", pred)]``).

    Args:
        panels: list of ``(title, landmarks)``; landmarks ``(F, 68, D)``, the same F for all.
        path: ``.mp4`` destination (written atomically).
        audio / sample_rate: see :func:`~tf_talkface.viz.video_io.write_video`.
        style: one of :data:`~tf_talkface.viz.draw.STYLES`, used for every panel.
        size: ``(width, height)`` of ONE panel in pixels; the video is
            ``(len(panels) * width, height)``.
        shared_view: one view (2D) or one set of 3D axis limits fitted over all panels, so that
            they are drawn at the same scale and position (use False for sequences in different
            units, e.g. pixels vs normalised).
        frame_numbers: overlay "frame i  t s" at the bottom left.
        progress: tqdm progress bar.
        fps: frames per second.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no panels, a bad panel shape, panels of different lengths (the message
            lists every panel's frame count), unknown style, ``"3d"`` with 2D landmarks.
    """
    if not panels:
        raise ValueError("render_side_by_side needs at least one (title, landmarks) panel")
    check_style(style)
    titles, arrays = [], []
    for k, item in enumerate(panels):
        try:
            title, lm = item
        except (TypeError, ValueError):
            raise ValueError(f"panel {k} must be a (title, landmarks) pair") from None
        a, size = _prepare(lm, style, size, name=f"panel {k} ({title!r})")
        titles.append(str(title))
        arrays.append(a)
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) > 1:
        desc = ", ".join(f"{t!r}: {n}" for t, n in zip(titles, lengths))
        raise ValueError(f"all panels must have the same number of frames; got {desc}")
    if shared_view:
        fits = [_fit_for(arrays, style, size)] * len(arrays)
    else:
        fits = [_fit_for([a], style, size) for a in arrays]
    frames = _side_by_side_frames(arrays, titles, style, size, fits, frame_numbers, fps)
    return write_video(path, frames, fps=fps, audio=audio, sample_rate=sample_rate,
                       n_frames=lengths[0], progress=progress)


def save_frame_png(landmarks: np.ndarray, frame_index: int, path: str | os.PathLike,
                   style: str = "painted", size: tuple[int, int] = (512, 512),
                   title: str | None = None, fps: float = FPS) -> Path:
    """Write frame ``frame_index`` of the video :func:`render_video` would make as a PNG,
    atomically (same view fitted over the whole sequence, same 3D azimuth).

    Args:
        landmarks: ``(F, 68, D)``.
        frame_index: 0-based frame number (negative counts from the end).
        path: destination (``.png``); parent folders are created.
        style / size / title / fps: as for :func:`render_video`.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: see :func:`render_frames`. IndexError: ``frame_index`` out of range.
        OSError: the PNG could not be written.
    """
    a, size = _prepare(landmarks, style, size)
    n = a.shape[0]
    if not -n <= int(frame_index) < n:
        raise IndexError(f"frame_index {frame_index} out of range for {n} frames")
    f = int(frame_index) % n
    fit = _fit_for([a], style, size)
    return write_png(path, _render_one(a[f], style, size, fit, f, fps, title))
