"""Speech in, talking face out: ``python -m tf_talkface.generate``.

Reads any audio (or the audio track of a video) that ffmpeg decodes, resamples it to the model's
rate, runs an exported SavedModel (:mod:`tf_talkface.saved_model`; the bundled default when no
model is given) and writes, per input ``NAME``:

- ``NAME.npy``: float32 (frames, 68, D) landmarks at 25 fps in the model's normalised
  coordinates (``frames = duration x 25``, rounded as the model's framing: see the model card);
- ``NAME.mp4``: H.264 video at 25 fps of the face (``--video painted|lines|3d``) with the input
  sound muxed as AAC, starting together (:mod:`tf_talkface.viz.render`).

``--save-npy`` is the replication toolkit's "save prediction" mode: ``NAME.npy`` plus the speech
as ``NAME.wav`` (the pair ``--load-npy`` reads back), no video unless ``--video`` is given.
``--load-npy`` animates externally created ``.npy`` files paired with a ``.wav`` of the same name.

Folders are processed recursively (outputs mirror the input tree) with a progress bar; files
whose outputs already exist are skipped (``--overwrite`` redoes them), so an interrupted run
resumes. Outputs are written atomically. A bad file is reported and skipped; the exit code is 1
if any file failed, 2 for bad arguments.
"""
from __future__ import annotations

import os

from tf_talkface.console import os_error_message, quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tf_talkface.audio.io import AudioError, AudioWarning, is_silent, load_audio, rms_dbfs, write_wav
from tf_talkface.files import (AUDIO_EXTENSIONS, InputError, find_inputs, load_npy, output_path,
                               save_npy)
from tf_talkface.saved_model import LoadedModel, ModelError, load_model
from tf_talkface.viz.render import render_video

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_STYLES", "GenerateError", "Report", "find_inputs",
           "save_npy", "load_npy", "write_outputs", "generate_file", "animate_file", "generate",
           "main"]

VIDEO_STYLES = ("painted", "lines", "3d", "none")
VIDEO_AUDIO_RATE = 44100
"""Sample rate (Hz) of the sound muxed into the videos (the model may hear 8 kHz)."""

GenerateError = InputError
"""An input that cannot be animated (the message names the file and the problem); the same class
as :class:`tf_talkface.files.InputError`, which the shared file helpers raise."""


@dataclass
class Report:
    """What :func:`generate` did: ``written`` maps each input to its output paths; ``skipped``
    lists inputs whose outputs already existed; ``failed`` maps inputs to error messages."""

    written: dict[Path, dict[str, Path]] = field(default_factory=dict)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """One line each: partial input (a truncated file), lengths that disagree."""


def write_outputs(landmarks: np.ndarray, out_dir: str | os.PathLike, name: str | os.PathLike,
                  audio: np.ndarray | None, sample_rate: int | None, video: str = "painted",
                  npy: bool = True, wav: bool = False, size: int = 512,
                  progress: bool = False) -> dict[str, Path]:
    """Write the outputs of one input (shared by ``generate`` and the TF Serving client).

    Args:
        landmarks: float32 (frames, 68, D) at 25 fps.
        out_dir, name: outputs go to ``out_dir/name.{npy,wav,mp4}`` (``name`` may hold folders).
        audio: float mono (samples,) in [-1, 1] at ``sample_rate`` Hz, muxed into the video and
            written as the ``.wav``; ``None`` = a silent video.
        video: ``painted``, ``lines``, ``3d`` (D = 3 only) or ``none``.
        npy, wav: write ``name.npy`` / ``name.wav``.
        size: video width = height in pixels.

    All outputs are first written into a hidden staging folder beside them and moved into place
    together at the end, so a failure (a full disk while encoding the video) leaves the previous
    outputs of ``name`` as they were, never a new ``.npy`` beside an old ``.mp4``.

    Returns:
        ``{"npy": ..., "wav": ..., "mp4": ...}`` for the files written.

    Raises:
        GenerateError: unknown video style, 3d for 2D landmarks, or non-finite landmarks.
        OSError: the outputs cannot be written (read-only or full disk, permissions).
    """
    if video not in VIDEO_STYLES:
        raise GenerateError(f"unknown video style {video!r}; choose one of {', '.join(VIDEO_STYLES)}")
    lm = np.asarray(landmarks, np.float32)
    if video == "3d" and lm.shape[-1] != 3:
        raise GenerateError(f"{name}: --video 3d needs 3D landmarks (frames, 68, 3); these are "
                            f"{lm.shape[-1]}D — use painted or lines")
    if lm.size and not np.all(np.isfinite(lm)):
        raise GenerateError(f"{name}: the landmarks hold NaN/Inf values; nothing written (a broken "
                            "model, or non-finite input)")
    base = Path(out_dir) / name
    base.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{base.name}.", suffix=".partial", dir=base.parent))
    try:
        staged: dict[str, Path] = {}
        inner = stage / base.name
        if npy:
            staged["npy"] = save_npy(output_path(inner, ".npy"), lm)
        if wav and audio is not None:
            staged["wav"] = write_wav(output_path(inner, ".wav"), audio, int(sample_rate))
        if video != "none":
            staged["mp4"] = render_video(lm, output_path(inner, ".mp4"), audio=audio,
                                         sample_rate=sample_rate, style=video, size=(size, size),
                                         progress=progress)
        written: dict[str, Path] = {}
        for kind, f in staged.items():  # all complete: swap them in together
            written[kind] = output_path(base, f".{kind}")
            os.replace(f, written[kind])
    except OSError as e:  # name the output, not the staging folder
        if e.filename and Path(e.filename).parent == stage:
            raise OSError(e.errno, e.strerror, str(base.parent / Path(e.filename).name)) from None
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return written


def _predict(model: LoadedModel, path: Path, allow_silent: bool) -> tuple[np.ndarray, str]:
    """Landmarks of one audio file with ``model`` (or the neutral face for silent input)."""
    try:
        y = load_audio(path, model.sample_rate)
    except AudioError as e:
        raise GenerateError(str(e)) from None
    minimum = int(model.card.get("min_samples", 1))
    if len(y) < minimum:
        raise GenerateError(f"{path}: audio too short ({len(y)} samples at {model.sample_rate} Hz;"
                            f" the model needs at least {minimum}, {minimum / model.sample_rate * 1000:.0f} ms)")
    if is_silent(y):
        if not allow_silent:
            raise GenerateError(f"{path}: the audio is silent ({rms_dbfs(y):.0f} dBFS); nothing to "
                                "animate (pass --allow-silent to render a neutral face)")
        return model.neutral_face(model.frames_for_samples(len(y))), "neutral face (silent input)"
    try:
        return model.predict(y), ""
    except ModelError as e:
        raise GenerateError(f"{path}: {e}") from None


def _outputs_exist(out_dir: Path, stem: Path, npy: bool, wav: bool, video: str) -> bool:
    want = ([".npy"] if npy else []) + ([".wav"] if wav else []) + ([".mp4"] if video != "none" else [])
    return bool(want) and all(output_path(out_dir / stem, s).is_file() for s in want)


def generate_file(path: str | os.PathLike, model: LoadedModel, out_dir: str | os.PathLike,
                  name: str | os.PathLike | None = None, video: str = "painted",
                  save_npy_mode: bool = False, allow_silent: bool = False, size: int = 512,
                  progress: bool = False) -> dict[str, Path]:
    """Animate one speech file with a loaded model; see :func:`write_outputs` for the outputs.

    ``save_npy_mode``: write ``NAME.npy`` + ``NAME.wav`` (the speech at the model's rate) and no
    video unless ``video`` is not ``"none"``.

    Raises:
        GenerateError: unreadable/empty/too-short audio, or silent audio without ``allow_silent``.
    """
    path = Path(path)
    lm, _ = _predict(model, path, allow_silent)
    try:
        audio = load_audio(path, VIDEO_AUDIO_RATE) if (video != "none" or save_npy_mode) else None
    except AudioError as e:
        raise GenerateError(str(e)) from None
    return write_outputs(lm, out_dir, name or path.stem, audio, VIDEO_AUDIO_RATE, video=video,
                         npy=True, wav=save_npy_mode, size=size, progress=progress)


def animate_file(npy_path: str | os.PathLike, out_dir: str | os.PathLike,
                 name: str | os.PathLike | None = None, video: str = "painted", size: int = 512,
                 progress: bool = False) -> dict[str, Path]:
    """``--load-npy``: animate external landmarks ``NAME.npy`` with the sound of ``NAME.wav``
    beside it (the replication toolkit's ``--load_prediction``).

    The landmarks and the sound must last as long (25 fps; within 2 frames or 5%): 20 frames
    beside 6 s of audio is an error, not a 0.8-s video.

    Raises:
        GenerateError: bad ``.npy`` (see :func:`load_npy`), missing or unreadable ``.wav``,
            lengths that disagree, or ``video == "none"``.
    """
    npy_path = Path(npy_path)
    if video == "none":
        raise GenerateError("--load-npy with --video none has nothing to write")
    lm = load_npy(npy_path)
    wav = output_path(npy_path.parent / npy_path.stem, ".wav")
    if not wav.is_file():
        raise GenerateError(f"{npy_path}: no {wav.name} beside it (--load-npy needs NAME.npy + NAME.wav)")
    try:
        audio = load_audio(wav, VIDEO_AUDIO_RATE)
    except AudioError as e:
        raise GenerateError(str(e)) from None
    seconds, lm_seconds = len(audio) / VIDEO_AUDIO_RATE, len(lm) / 25.0
    if abs(seconds - lm_seconds) > max(2 / 25.0, 0.05 * seconds):
        raise GenerateError(f"{npy_path}: {len(lm)} frames ({lm_seconds:.2f} s at 25 fps) but "
                            f"{wav.name} lasts {seconds:.2f} s; the landmarks do not belong to "
                            "this sound (or are not at 25 fps)")
    return write_outputs(lm, out_dir, name or npy_path.stem, audio, VIDEO_AUDIO_RATE, video=video,
                         npy=False, size=size, progress=progress)


def generate(inputs: str | os.PathLike, out_dir: str | os.PathLike,
             model: str | os.PathLike | LoadedModel | None = None, video: str | None = None,
             save_npy_mode: bool = False, load_npy_mode: bool = False, allow_silent: bool = False,
             overwrite: bool = False, size: int = 512, progress: bool = True) -> Report:
    """Animate a file or a folder of files (the CLI's library function).

    Args:
        inputs: a speech/video file or a folder (recursive); with ``load_npy_mode`` a ``.npy``
            file or a folder of ``.npy`` + ``.wav`` pairs.
        out_dir: output folder (created).
        model: exported model folder, a :class:`LoadedModel`, or ``None`` for the bundled default.
        video: ``painted``/``lines``/``3d``/``none``; default ``painted`` (``none`` with
            ``save_npy_mode``).
        overwrite: redo inputs whose outputs exist (default: skip them, so a run resumes).

    Returns:
        a :class:`Report`; per-file problems are collected in ``report.failed``.

    Raises:
        GenerateError: no inputs, or a bad video style. ModelError: the model cannot be loaded.
    """
    if video is None:
        video = "none" if save_npy_mode else "painted"
    if video not in VIDEO_STYLES:
        raise GenerateError(f"unknown video style {video!r}; choose one of {', '.join(VIDEO_STYLES)}")
    if load_npy_mode and save_npy_mode:
        raise GenerateError("--load-npy and --save-npy exclude each other")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GenerateError(f"{out}: -o must be a folder (outputs are NAME.npy/NAME.mp4 in it); "
                            "this is an existing file")
    items = find_inputs(inputs, (".npy",) if load_npy_mode else AUDIO_EXTENSIONS)
    if load_npy_mode and any(f.suffix.lower() != ".npy" for f, _ in items):
        raise GenerateError(f"{inputs}: --load-npy expects a .npy file or a folder of them")
    if not load_npy_mode and not isinstance(model, LoadedModel):
        model = load_model(model)
    report = Report()
    from tqdm.auto import tqdm

    bar = tqdm(items, desc="generate", unit="file", disable=not progress or len(items) < 2)
    for path, stem in bar:
        bar.set_postfix_str(str(stem)[-30:])
        npy = not load_npy_mode
        if not overwrite and _outputs_exist(out, stem, npy, save_npy_mode, video):
            report.skipped.append(path)
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AudioWarning)
                if load_npy_mode:
                    report.written[path] = animate_file(path, out, stem, video, size)
                else:
                    report.written[path] = generate_file(path, model, out, stem, video,
                                                         save_npy_mode, allow_silent, size,
                                                         progress=len(items) == 1 and progress)
            report.warnings.extend(dict.fromkeys(str(w.message) for w in caught
                                                 if issubclass(w.category, AudioWarning)))
        except GenerateError as e:
            report.failed[path] = str(e)
        except OSError as e:  # read-only/full disk, permissions: this file fails, the rest go on
            report.failed[path] = f"{path}: cannot write its outputs: {os_error_message(e)}"
        except RuntimeError as e:  # ffmpeg could not encode (render_video)
            report.failed[path] = f"{path}: {e}"
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.generate",
        description="Animate a 68-point face from speech: NAME.npy landmarks (25 fps) + NAME.mp4 "
                    "with the sound. Uses the bundled default model unless -m is given.")
    p.add_argument("-i", "--input", required=True,
                   help="speech/video file or folder (recursive); with --load-npy: .npy file or folder")
    p.add_argument("-m", "--model", help="exported model: saved_models/NAME[/VERSION] "
                                         "(default: the bundled saved_models/cnn_nr_grid_s1)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--save-npy", action="store_true",
                      help="save NAME.npy + NAME.wav (for --load-npy); no video unless --video is given")
    mode.add_argument("--load-npy", action="store_true",
                      help="animate external NAME.npy (frames, 68, 2|3) with NAME.wav beside it")
    p.add_argument("--video", choices=VIDEO_STYLES,
                   help="video style (default painted; none with --save-npy)")
    p.add_argument("--size", type=int, default=512, help="video width = height in pixels (512)")
    p.add_argument("--allow-silent", action="store_true",
                   help="render a neutral face for silent input instead of failing")
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.size < 64 or args.size % 16:
        print("generate: error: --size must be a multiple of 16, at least 64", file=sys.stderr)
        return 2
    try:
        report = generate(args.input, args.out, args.model, args.video, args.save_npy,
                          args.load_npy, args.allow_silent, args.overwrite, args.size,
                          progress=not args.quiet)
    except (GenerateError, ModelError) as e:
        print(f"generate: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the output folder cannot be created
        print(f"generate: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    for src, files in report.written.items():
        print(f"{src} -> " + ", ".join(str(f) for f in files.values()))
    for msg in report.warnings:
        print(f"generate: warning: {msg}", file=sys.stderr)
    if report.skipped:
        print(f"{len(report.skipped)} input(s) skipped: outputs exist (use --overwrite to redo)")
    for src, msg in report.failed.items():
        print(f"generate: failed: {msg}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(report.failed) + len(report.written) + len(report.skipped)}"
              " input(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
