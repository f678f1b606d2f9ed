"""Speech in, talking face out: ``python -m tf_talkface.generate``.

Reads any audio (or the audio track of a video) that ffmpeg decodes, resamples it to the model's
rate, runs an exported SavedModel (:mod:`tf_talkface.saved_model`; the bundled default when no
model is given) and writes, per input ``NAME``:

- ``NAME.npy``: float32 (frames, 68, D) landmarks at 25 fps in the model's normalised
  coordinates (``frames = duration x 25``, rounded as the model's framing: see the model card);
- ``NAME.mp4``: H.264 video at 25 fps of the face (``--video painted|lines|3d``) with the input
  sound muxed as AAC, starting together (:mod:`tf_talkface.viz.render`).

``--image PHOTO`` (issue 13): ``NAME.mp4`` is that photo speaking instead of a drawing, at the
photo's own framing and resolution (capped at 1080p, ``--size``), with head motion
(``--still``, ``--head-motion``), blinks (``--no-blink``), ``--lip-gain``, ``--face-index``,
``--crop`` and ``--seed``; one photo for all inputs (:mod:`tf_talkface.animate`). ``-i example``
and ``--image example`` name the bundled examples (:mod:`tf_talkface.assets`).

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
from tf_talkface.metrics import opening_range
from tf_talkface.saved_model import LoadedModel, ModelError, load_model
from tf_talkface.viz.render import render_video

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_STYLES", "GenerateError", "Report", "find_inputs",
           "save_npy", "load_npy", "write_outputs", "generate_file", "animate_file", "generate",
           "main"]

VIDEO_STYLES = ("painted", "lines", "3d", "none")
LANDMARK_VIDEO_SIZE = 512
"""Default ``--size`` of the landmark drawings (width = height)."""
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
                  npy: bool = True, wav: bool = False, size: int = LANDMARK_VIDEO_SIZE,
                  progress: bool = False, animator=None,
                  energy: np.ndarray | None = None) -> dict[str, Path]:
    """Write the outputs of one input (shared by ``generate`` and the TF Serving client).

    Args:
        landmarks: float32 (frames, 68, D) at 25 fps.
        out_dir, name: outputs go to ``out_dir/name.{npy,wav,mp4}`` (``name`` may hold folders).
        audio: float mono (samples,) in [-1, 1] at ``sample_rate`` Hz, muxed into the video and
            written as the ``.wav``; ``None`` = a silent video.
        video: ``painted``, ``lines``, ``3d`` (D = 3 only) or ``none``.
        npy, wav: write ``name.npy`` / ``name.wav``.
        size: video width = height in pixels (landmark drawings).
        animator: a :class:`tf_talkface.animate.animator.PhotoAnimator`: the mp4 is its photo
            driven by ``landmarks`` (``video`` must not be ``none``; its style is not used).
        energy: float (frames,) speech energy 0-1 for the photo's head motion
            (:func:`tf_talkface.animate.motion.frame_energy`).

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
        if video != "none" and animator is not None:
            from tf_talkface.animate.animator import write_mp4

            staged["mp4"] = write_mp4(output_path(inner, ".mp4"), animator.frames(lm, energy),
                                      audio=audio, sample_rate=sample_rate, n_frames=len(lm),
                                      progress=progress)
        elif video != "none":
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


def _predict(model: LoadedModel, path: Path, allow_silent: bool,
             silent_face: np.ndarray | None = None) -> tuple[np.ndarray, str, np.ndarray]:
    """Landmarks of one audio file with ``model`` (or ``silent_face`` (68, 2), default the card's
    neutral face, repeated for silent input), a note, and the waveform at the model's rate."""
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
        n = model.frames_for_samples(len(y))
        face = model.neutral_face(n) if silent_face is None else \
            np.repeat(np.asarray(silent_face, np.float32)[None], n, axis=0)
        return face, "neutral face (silent input)", y
    try:
        return model.predict(y), "", y
    except ModelError as e:
        raise GenerateError(f"{path}: {e}") from None


def _outputs_exist(out_dir: Path, stem: Path, npy: bool, wav: bool, video: str) -> bool:
    want = ([".npy"] if npy else []) + ([".wav"] if wav else []) + ([".mp4"] if video != "none" else [])
    return bool(want) and all(output_path(out_dir / stem, s).is_file() for s in want)


def generate_file(path: str | os.PathLike, model: LoadedModel, out_dir: str | os.PathLike,
                  name: str | os.PathLike | None = None, video: str = "painted",
                  save_npy_mode: bool = False, allow_silent: bool = False,
                  size: int = LANDMARK_VIDEO_SIZE, progress: bool = False,
                  animator=None) -> dict[str, Path]:
    """Animate one speech file with a loaded model; see :func:`write_outputs` for the outputs.

    ``save_npy_mode``: write ``NAME.npy`` + ``NAME.wav`` (the speech at the model's rate) and no
    video unless ``video`` is not ``"none"``. ``animator``: a
    :class:`~tf_talkface.animate.animator.PhotoAnimator` whose neutral is this model's
    (:func:`~tf_talkface.animate.motion.model_neutral`): the mp4 is the photo speaking, its head
    motion driven by the speech energy at the model's rate (as ``stream --image``); silent input
    (with ``allow_silent``) shows the photo at rest.

    Raises:
        GenerateError: unreadable/empty/too-short audio, or silent audio without ``allow_silent``.
    """
    path = Path(path)
    silent_face = animator.transfer.neutral if animator is not None else None
    lm, _, y = _predict(model, path, allow_silent, silent_face)
    try:
        audio = load_audio(path, VIDEO_AUDIO_RATE) if (video != "none" or save_npy_mode) else None
    except AudioError as e:
        raise GenerateError(str(e)) from None
    energy = None
    if animator is not None:
        from tf_talkface.animate.motion import frame_energy

        energy = frame_energy(y, model.sample_rate, len(lm))
    return write_outputs(lm, out_dir, name or path.stem, audio, VIDEO_AUDIO_RATE, video=video,
                         npy=True, wav=save_npy_mode, size=size, progress=progress,
                         animator=animator, energy=energy)


def animate_file(npy_path: str | os.PathLike, out_dir: str | os.PathLike,
                 name: str | os.PathLike | None = None, video: str = "painted",
                 size: int = LANDMARK_VIDEO_SIZE, progress: bool = False,
                 animator=None) -> dict[str, Path]:
    """``--load-npy``: animate external landmarks ``NAME.npy`` with the sound of ``NAME.wav``
    beside it (the replication toolkit's ``--load_prediction``). With ``animator`` (a
    :class:`~tf_talkface.animate.animator.PhotoAnimator`) the photo speaks; its neutral is then
    the sequence's own closed-mouth frame (any landmark model works).

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
    energy = None
    if animator is not None:
        from tf_talkface.animate.motion import frame_energy
        from tf_talkface.face.normalize import closed_mouth_frame

        animator.set_neutral(lm[closed_mouth_frame(lm[..., :2])][..., :2])
        energy = frame_energy(audio, VIDEO_AUDIO_RATE, len(lm))
    return write_outputs(lm, out_dir, name or npy_path.stem, audio, VIDEO_AUDIO_RATE, video=video,
                         npy=False, size=size, progress=progress, animator=animator,
                         energy=energy)


def _load_photo_async(image, size: int, crop: float | None, face_index: int):
    """Start loading the photo (decode, dlib) and compiling the warper in a thread while the
    model loads; returns a future of the :class:`~tf_talkface.animate.photo.Photo`."""
    from concurrent.futures import ThreadPoolExecutor

    def job():
        from tf_talkface.animate.photo import load_photo
        from tf_talkface.animate.photo_warp import warm_up

        photo = load_photo(image, size=size, crop=crop, face_index=face_index)
        warm_up()
        return photo

    pool = ThreadPoolExecutor(1, thread_name_prefix="photo")
    fut = pool.submit(job)
    pool.shutdown(wait=False)
    return fut


def _atvgnet_path(model) -> Path | None:
    """The version folder when ``model`` names an exported ATVGnet model, else ``None``."""
    if model is None or isinstance(model, LoadedModel):
        return None
    from tf_talkface.card import read_card, resolve_model_dir

    try:
        d = resolve_model_dir(model)
        return d if read_card(d).get("model") == "atvgnet" else None
    except ModelError:
        return None  # load_model reports it


def generate_atvgnet_file(path: str | os.PathLike, model, photo, out_dir: str | os.PathLike,
                          name: str | os.PathLike | None = None, panels: bool = False
                          ) -> dict[str, Path]:
    """One speech file through ATVGnet with a photo (:mod:`tf_talkface.animate.atvgnet_video`):
    ``NAME.mp4`` (the photo speaking, with the sound), ``NAME.npy`` (AT-net's landmarks, float32
    (frames, 68, 2) in photo pixels, 25 fps) and with ``panels`` ``NAME.panels.mp4`` (landmarks |
    attention | colour map | result, as the original's figure).

    Raises:
        GenerateError: unreadable, too short or silent audio.
    """
    from tf_talkface.animate.atvgnet_video import panels as make_panels
    from tf_talkface.animate.atvgnet_video import speak
    from tf_talkface.viz.video_io import write_video

    path = Path(path)
    try:
        y = load_audio(path, int(model.card["sample_rate"]))
    except AudioError as e:
        raise GenerateError(str(e)) from None
    if len(y) < int(model.card.get("min_samples", 1)):
        raise GenerateError(f"{path}: audio too short ({len(y)} samples)")
    if is_silent(y):
        raise GenerateError(f"{path}: the audio is silent ({rms_dbfs(y):.0f} dBFS); nothing to animate")
    try:
        res = speak(model, y, photo.image, photo.points)
    except (ModelError, ValueError) as e:
        raise GenerateError(f"{path}: {e}") from None
    if not np.all(np.isfinite(res.landmarks)):
        raise GenerateError(f"{path}: the model produced non-finite landmarks")
    stem = Path(name or path.stem)
    out = Path(out_dir)
    files = {"npy": output_path(out / stem, ".npy")}
    files["npy"].parent.mkdir(parents=True, exist_ok=True)
    save_npy(files["npy"], res.landmarks)
    files["mp4"] = write_video(output_path(out / stem, ".mp4"), iter(res.frames), audio=str(path))
    if panels:
        files["panels"] = write_video(output_path(out / stem, ".panels.mp4"),
                                      iter(make_panels(res)), audio=str(path))
    return files


def _generate_atvgnet(items, out: Path, model_dir: Path, image, size, crop, face_index,
                      overwrite: bool, panels: bool, progress: bool) -> "Report":
    from tf_talkface.animate.photo import DEFAULT_SIZE, PhotoError, load_photo
    from tf_talkface.assets import resolve
    from tf_talkface.atvgnet_serving import load_atvgnet

    if image is None:
        raise GenerateError(f"{model_dir}: ATVGnet animates a photo; give one with --image "
                            "(--image example = the bundled portrait)")
    try:
        photo = load_photo(resolve(image, "photo"), size=size or DEFAULT_SIZE, crop=crop,
                           face_index=face_index)
    except PhotoError as e:
        raise GenerateError(str(e)) from None
    model = load_atvgnet(model_dir)
    report = Report()
    from tqdm.auto import tqdm

    for path, stem in tqdm(items, desc="generate", unit="file",
                           disable=not progress or len(items) < 2):
        want = [".npy", ".mp4"] + ([".panels.mp4"] if panels else [])
        if not overwrite and all(output_path(out / stem, s).is_file() for s in want):
            report.skipped.append(path)
            continue
        try:
            report.written[path] = generate_atvgnet_file(path, model, photo, out, stem, panels)
        except GenerateError as e:
            report.failed[path] = str(e)
        except OSError as e:
            report.failed[path] = f"{path}: cannot write its outputs: {os_error_message(e)}"
        except RuntimeError as e:
            report.failed[path] = f"{path}: {e}"
    return report


def generate(inputs: str | os.PathLike, out_dir: str | os.PathLike,
             model: str | os.PathLike | LoadedModel | None = None, video: str | None = None,
             save_npy_mode: bool = False, load_npy_mode: bool = False, allow_silent: bool = False,
             overwrite: bool = False, size: int | None = None, progress: bool = True,
             image: str | os.PathLike | None = None, animation=None, crop: float | None = None,
             face_index: int = 0, panels: bool = False) -> Report:
    """Animate a file or a folder of files (the CLI's library function).

    Args:
        inputs: a speech/video file or a folder (recursive); with ``load_npy_mode`` a ``.npy``
            file or a folder of ``.npy`` + ``.wav`` pairs; ``"example"`` = the bundled example
            speech.
        out_dir: output folder (created).
        model: exported model folder, a :class:`LoadedModel`, or ``None`` for the bundled default.
        video: ``painted``/``lines``/``3d``/``none``; default ``painted`` (``none`` with
            ``save_npy_mode``). Not used with ``image`` (must not be ``none`` then).
        overwrite: redo inputs whose outputs exist (default: skip them, so a run resumes).
        size: landmark drawings: width = height (default 512); ``image``: cap of the output's
            shorter side (default 1080; see :func:`tf_talkface.animate.photo.output_size`).
        image: a photo (``"example"`` = the bundled portrait): every ``NAME.mp4`` is this photo
            speaking (:mod:`tf_talkface.animate`).
        animation: :class:`tf_talkface.animate.animator.AnimationSettings` for ``image``.
        crop, face_index: see :func:`tf_talkface.animate.photo.load_photo`.
        panels: ATVGnet models: also ``NAME.panels.mp4`` (landmarks | attention | colour map |
            result). An ATVGnet model (model card ``atvgnet``) needs ``image``; its ``NAME.mp4``
            is the photo speaking through VG-net (:func:`generate_atvgnet_file`).

    Returns:
        a :class:`Report`; per-file problems are collected in ``report.failed``.

    Raises:
        GenerateError: no inputs, a bad video style, or a photo that cannot be animated (the
            message names the photo). ModelError: the model cannot be loaded.
    """
    from tf_talkface.assets import resolve

    if image is not None and video is not None and video != "painted":
        raise GenerateError(f"--image renders the photo; --video {video} does not apply "
                            "(drop one of them)")
    if video is None:
        video = "none" if (save_npy_mode and image is None) else "painted"
    if video not in VIDEO_STYLES:
        raise GenerateError(f"unknown video style {video!r}; choose one of {', '.join(VIDEO_STYLES)}")
    if load_npy_mode and save_npy_mode:
        raise GenerateError("--load-npy and --save-npy exclude each other")
    inputs = resolve(inputs, "speech")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GenerateError(f"{out}: -o must be a folder (outputs are NAME.npy/NAME.mp4 in it); "
                            "this is an existing file")
    items = find_inputs(inputs, (".npy",) if load_npy_mode else AUDIO_EXTENSIONS)
    if load_npy_mode and any(f.suffix.lower() != ".npy" for f, _ in items):
        raise GenerateError(f"{inputs}: --load-npy expects a .npy file or a folder of them")
    atvgnet = _atvgnet_path(model)
    if atvgnet is not None:
        if load_npy_mode or save_npy_mode:
            raise GenerateError("--load-npy/--save-npy do not apply to an ATVGnet model")
        return _generate_atvgnet(items, out, atvgnet, image, size, crop, face_index, overwrite,
                                 panels, progress)
    if panels:
        raise GenerateError("--panels needs an ATVGnet model (-m saved_models/atvgnet_...)")
    photo = None
    if image is not None:
        from tf_talkface.animate.photo import DEFAULT_SIZE

        photo = _load_photo_async(resolve(image, "photo"), size or DEFAULT_SIZE, crop, face_index)
    if not load_npy_mode and not isinstance(model, LoadedModel):
        model = load_model(model)
    animator = None
    if photo is not None:
        from tf_talkface.animate.animator import PhotoAnimator
        from tf_talkface.animate.motion import model_neutral
        from tf_talkface.animate.photo import PhotoError
        from tf_talkface.animate.photo_warp import MeshError

        try:
            loaded = photo.result()
            # --load-npy: each input sets its own neutral (animate_file); the photo's points
            # stand in until then
            neutral = model_neutral(model) if not load_npy_mode else loaded.points
            animator = PhotoAnimator(loaded, neutral, animation)
        except (PhotoError, MeshError) as e:
            raise GenerateError(str(e) if isinstance(e, PhotoError) else
                                f"{image}: {e}") from None
        for note in loaded.notes:
            print(f"generate: {loaded.path}: {note}", file=sys.stderr)
    size = LANDMARK_VIDEO_SIZE if size is None else size
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
                    report.written[path] = animate_file(path, out, stem, video, size,
                                                        animator=animator)
                else:
                    report.written[path] = generate_file(path, model, out, stem, video,
                                                         save_npy_mode, allow_silent, size,
                                                         progress=len(items) == 1 and progress,
                                                         animator=animator)
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
                   help="speech/video file or folder (recursive); with --load-npy: .npy file or "
                        "folder; 'example' = the bundled example sentence")
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
    p.add_argument("--size", type=int, default=None,
                   help="landmark drawings: width = height in pixels (default 512); --image: cap "
                        "of the video's shorter side (default 1080; never upscaled)")
    p.add_argument("--allow-silent", action="store_true",
                   help="render a neutral face for silent input instead of failing")
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist")
    p.add_argument("--panels", action="store_true",
                   help="ATVGnet models: also NAME.panels.mp4 (landmarks | attention | colour map "
                        "| result)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from tf_talkface.animate.animator import add_photo_arguments

    add_photo_arguments(p)
    return p


def _opening_note(files: dict) -> str:
    """How far the generated mouth moves (issue 11): ``opening_range`` of the written landmarks,
    as a fraction of the mouth width; real GRID video scores 0.16-0.22."""
    if "npy" not in files:
        return ""
    try:
        r = opening_range(np.load(files["npy"]))
    except (OSError, ValueError):
        return ""
    return f" (mouth opening range {r:.2f} of its width; real speech video: 0.16-0.22)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tf_talkface.animate.animator import settings_from_args

    if args.image is None and args.size is not None and (args.size < 64 or args.size % 16):
        print("generate: error: --size must be a multiple of 16, at least 64", file=sys.stderr)
        return 2
    if args.image is not None and args.size is not None and args.size < 64:
        print("generate: error: --size must be at least 64 with --image", file=sys.stderr)
        return 2
    try:
        animation = settings_from_args(args)
    except ValueError as e:
        print(f"generate: error: {e}", file=sys.stderr)
        return 2
    try:
        report = generate(args.input, args.out, args.model, args.video, args.save_npy,
                          args.load_npy, args.allow_silent, args.overwrite, args.size,
                          progress=not args.quiet, image=args.image, animation=animation,
                          crop=args.crop, face_index=args.face_index, panels=args.panels)
    except (GenerateError, ModelError) as e:
        print(f"generate: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the output folder cannot be created
        print(f"generate: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    for src, files in report.written.items():
        print(f"{src} -> " + ", ".join(str(f) for f in files.values()) + _opening_note(files))
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
