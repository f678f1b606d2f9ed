"""``python -m tf_talkface.prepare``: talking-face videos (or original HDF5 files) -> TFRecords.

Pipeline per video (parallel over clips, see :func:`prepare`):
  1. dlib 68-point landmarks on every frame (cached per video content, so re-runs and other
     recipes reuse them), resampled to 25 fps;
  2. the audio track, decoded with ffmpeg and resampled to the recipe's rate, trimmed/padded by
     at most ``max_frame_mismatch`` frames to the video's frame count;
  3. 2018 recipe: log-mel delta features (exactly the original computation); atvgnet: aligned
     face crops as JPEG, landmarks in the crop, MFCC (``data/atvgnet_recipe.py``).
Then, over all usable clips: deterministic splits, landmark normalisation per recipe (2020 and
atvgnet: PCA fitted on the training split only), sharded TFRecords and ``manifest.json``
(written last, atomically). Bad clips are skipped with a reason recorded in the manifest; they
never abort a run.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_talkface.console import os_error_message, quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

from tf_talkface import __version__
from tf_talkface.config import FPS, HDF5_LAYOUTS, RECIPES, RecipeConfig, recipe as make_recipe
from tf_talkface.data.build import (PrepareError, assign_splits, begin_dataset, feature_stats,
                                    finish_dataset, parse_split, write_dataset)
from tf_talkface.data.hdf5 import import_hdf5
from tf_talkface.data.manifest import FORMAT_VERSION, MANIFEST, SPLITS, write_json_atomic

log = logging.getLogger("tf_talkface.prepare")

VIDEO_EXTS = (".mpg", ".mpeg", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
MIN_FRAMES = 8
WORK_DIR = ".work"
RUNNERS = ("local", "beam")


# --------------------------------------------------------------------------- discovery

@dataclass(frozen=True)
class ClipJob:
    """One video to process. ``clip_id`` is unique in the dataset (path relative to its root,
    without extension, with the root folder's name in front); ``speaker`` is the parent folder."""

    path: str
    clip_id: str
    speaker: str
    source: str


def find_videos(dirs: list[str | os.PathLike]) -> list[ClipJob]:
    """All video files under ``dirs`` (recursive, sorted), as :class:`ClipJob` objects.

    Raises:
        PrepareError: a folder does not exist.
    """
    jobs = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise PrepareError(f"--videos {d}: not a folder")
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
                rel = p.relative_to(root)
                clip_id = str(Path(root.name) / rel.with_suffix(""))
                speaker = p.parent.name if p.parent != root else root.name
                jobs.append(ClipJob(str(p), clip_id, speaker, str(Path(root.name) / rel)))
    ids = [j.clip_id for j in jobs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise PrepareError(f"clip ids collide (same folder name given twice?): {sorted(dup)[:5]}")
    return jobs


# --------------------------------------------------------------------------- per-clip work

def _file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """Landmark cache shared by all datasets: ``$XDG_CACHE_HOME/tf_talkface/landmarks``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tf_talkface" / "landmarks"


def cached_landmarks(path: str, cfg, cache_dir: Path | None) -> dict:
    """dlib landmarks of a video at its native fps, from the cache or freshly extracted.

    The cache key is the SHA-1 of the file's bytes and the landmark settings, so a renamed file
    still hits and a changed file or setting misses. A failed extraction is cached too (its
    reason), so a re-run does not retry it.

    Returns:
        dict with ``points`` (T, 68, 2) float32 pixels, ``fps``, ``interpolated``,
        ``multi_face`` (lists of frame indices) — or ``error`` (str) when no usable face track.
    """
    from tf_talkface.face.landmarks import FaceError

    key = None
    if cache_dir is not None:
        settings = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
        key = hashlib.sha1((_file_digest(path) + settings).encode()).hexdigest()
        entry = cache_dir / key[:2] / f"{key}.npz"
        if entry.is_file():
            try:
                with np.load(entry, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    if "error" in meta:
                        return meta
                    meta["points"] = z["points"]
                    return meta
            except Exception:  # a damaged cache entry is just recomputed
                entry.unlink(missing_ok=True)
    try:
        vl = _extractor(cfg).extract(path)
        result = {"points": vl.points.astype(np.float32), "fps": float(vl.fps),
                  "interpolated": list(map(int, vl.interpolated)),
                  "multi_face": list(map(int, vl.multi_face))}
    except FaceError as e:
        result = {"error": str(e)}
    if key is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: v for k, v in result.items() if k != "points"}
        tmp = entry.with_name(entry.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)),
                 points=result.get("points", np.zeros((0, 68, 2), np.float32)))
        os.replace(tmp, entry)
    return result


_EXTRACTORS: dict = {}


def _extractor(cfg):
    from tf_talkface.face.landmarks import LandmarkExtractor

    key = dataclasses.astuple(cfg)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = LandmarkExtractor(cfg)
    return _EXTRACTORS[key]


def process_clip(job: ClipJob, rcfg: RecipeConfig, work_dir: Path, cache_dir: Path | None) -> dict:
    """Everything per clip that does not need the other clips. Runs in a worker process.

    Writes ``work_dir/<n>.npz`` (atomically) with ``landmarks_raw`` (T, 68, 2) at 25 fps,
    ``audio`` (T * hop,) float32 quantised to 16 bits, and ``features`` (T, 128) for the 2018
    recipe (atvgnet: the arrays of :func:`tf_talkface.data.atvgnet_recipe.clip_arrays`);
    returns a summary dict (``ok`` True) or ``{"ok": False, "reason": ...}``.
    A clip whose work file exists is not recomputed (resume).
    """
    from tf_talkface.audio.io import AudioError, is_silent, load_audio
    from tf_talkface.face.landmarks import resample_fps

    name = hashlib.sha1(job.clip_id.encode()).hexdigest()[:16]
    work = work_dir / f"{name}.npz"
    summary_path = work_dir / f"{name}.json"
    if work.is_file() and summary_path.is_file():
        with open(summary_path) as f:
            return json.load(f)

    def done(summary: dict) -> dict:
        summary.update(clip_id=job.clip_id, speaker=job.speaker, source=job.source)
        write_json_atomic(summary_path, summary, indent=None)
        return summary

    def skip(reason: str) -> dict:
        s = {"ok": False, "reason": reason, "clip_id": job.clip_id, "speaker": job.speaker,
             "source": job.source}
        return s  # not written: a skipped clip is cheap to re-check except landmarks (cached)

    try:
        lm = cached_landmarks(job.path, rcfg.landmarks, cache_dir)
    except Exception as e:  # never abort the run on one clip
        return skip(f"landmark extraction failed: {type(e).__name__}: {e}")
    if "error" in lm:
        return skip(lm["error"])
    points = resample_fps(lm["points"], lm["fps"], FPS)
    n = int(points.shape[0])
    if n < MIN_FRAMES:
        return skip(f"too short: {n} frames at 25 fps (< {MIN_FRAMES})")

    sr, hop = rcfg.sample_rate, rcfg.hop
    try:
        audio = load_audio(job.path, sr)
    except AudioError as e:
        return skip(str(e))
    except Exception as e:
        return skip(f"audio decoding failed: {type(e).__name__}: {e}")
    if is_silent(audio):
        return skip(f"{job.path}: silent audio track")
    audio_frames = len(audio) / hop
    mismatch = int(round(audio_frames)) - n
    if abs(mismatch) > rcfg.max_frame_mismatch:
        return skip(f"{job.path}: audio is {audio_frames:.2f} frames long, video {n} frames "
                    f"(more than {rcfg.max_frame_mismatch} apart)")
    target = n * hop
    audio = np.pad(audio[:target], (0, max(0, target - len(audio)))).astype(np.float32)
    from tf_talkface.data.records import pcm16_bytes, pcm16_to_float
    audio = pcm16_to_float(pcm16_bytes(audio))  # what the records will hold
    arrays = {"landmarks_raw": points.astype(np.float32), "audio": audio}
    if rcfg.name == "eskimez2018":
        from tf_talkface.audio.features import logmel_delta_features
        arrays["features"] = logmel_delta_features(audio, rcfg.logmel)[:n].astype(np.float32)
    elif rcfg.name == "atvgnet":
        from tf_talkface.data.atvgnet_recipe import clip_arrays
        try:
            arrays.update(clip_arrays(job.path, rcfg, lm["points"], lm["fps"], audio))
        except ValueError as e:
            return skip(f"{job.path}: {e}")
    tmp = work.with_name(work.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, work)
    return done({"ok": True, "work": work.name, "num_frames": n, "fps_src": lm["fps"],
                 "frame_adjust": mismatch, "interpolated_frames": lm["interpolated"],
                 "multi_face_frames": lm["multi_face"]})


def _worker_init():
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    logging.getLogger().setLevel(logging.WARNING)


def _run_job(args):
    job, rcfg, work_dir, cache_dir = args
    try:
        return process_clip(job, rcfg, work_dir, cache_dir)
    except Exception as e:  # a bug on one clip must not take the run down
        return {"ok": False, "reason": f"unexpected error: {type(e).__name__}: {e}",
                "clip_id": job.clip_id, "speaker": job.speaker, "source": job.source}


def run_jobs(jobs: list[ClipJob], rcfg: RecipeConfig, work_dir: Path, cache_dir: Path | None,
             workers: int, progress: bool = True) -> list[dict]:
    """Process clips in a pool of ``workers`` processes (spawned; 1 = in this process) with a
    tqdm progress bar; results in the order of ``jobs``."""
    from tqdm.auto import tqdm

    args = [(j, rcfg, work_dir, cache_dir) for j in jobs]
    bar = tqdm(total=len(jobs), unit="clip", desc="prepare", disable=not progress, smoothing=0.1)
    results: list[dict | None] = [None] * len(jobs)
    if workers <= 1:
        for i, a in enumerate(args):
            results[i] = _run_job(a)
            bar.update()
    else:
        # ProcessPoolExecutor (not mp.Pool): a worker killed by the OS (out of memory, a crash in
        # a native library) raises BrokenProcessPool instead of hanging; its clips are skipped
        # with that reason and a re-run retries them.
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futures = {pool.submit(_run_job, a): i for i, a in enumerate(args)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as e:
                    j = jobs[i]
                    results[i] = {"ok": False, "clip_id": j.clip_id, "speaker": j.speaker,
                                  "source": j.source,
                                  "reason": f"worker process failed: {type(e).__name__}: {e}"}
                bar.update()
    bar.close()
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- normalisation

def resolve_mean_shape(path: str | None) -> tuple[np.ndarray | None, str]:
    """The 2018 mean shape (68, 2): ``path`` if given, else the original's file in the shared
    reference data, else None (then the dataset's own mean is used)."""
    from tf_talkface.resources import reference_file

    if path:
        p = Path(path)
        if not p.is_file():
            raise PrepareError(f"--mean-shape {path}: no such file")
        ms = np.load(p)
        if ms.size != 136:
            raise PrepareError(f"--mean-shape {path}: expected 68x2 values, got shape {ms.shape}")
        return ms.reshape(68, 2), str(p)
    ref = reference_file("eskimez2018", "mean_shape.npy")
    if ref is not None:
        return np.load(ref).reshape(68, 2), "eskimez2018 original mean_shape.npy"
    return None, ""


def normalise_2018(raws: dict[str, np.ndarray], train_ids: list[str], mean_shape_path: str | None
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """Eye alignment + expression transfer + /600 for every clip; returns (landmarks per clip,
    manifest section)."""
    from tf_talkface.face.normalize import align_eye_points, normalize_eskimez2018, prepare_mean_shape

    ms, source = resolve_mean_shape(mean_shape_path)
    if ms is None:
        firsts = np.stack([align_eye_points(raws[c][:1])[0] for c in train_ids])
        ms_aligned = firsts.mean(axis=0)
        source = "dataset: mean of the eye-aligned first frames of the training clips"
    else:
        ms_aligned = prepare_mean_shape(ms)
    out = {}
    for c, r in raws.items():
        try:
            out[c] = normalize_eskimez2018(r, ms_aligned)
        except ValueError as e:  # degenerate landmarks (e.g. coinciding eye corners): this clip only
            out[c] = e
    return out, {"mean_shape_aligned": np.round(ms_aligned, 6).tolist(), "mean_shape_source": source}


def normalise_2020(raws: dict[str, np.ndarray], train_ids: list[str], rcfg: RecipeConfig,
                   basis_path: str | None, dataset_dir: Path):
    """Procrustes + identity removal + PCA (fitted on the training split unless a basis is given).

    Returns (normalised landmarks per clip, PCA coefficients per clip, closed-mouth frame per
    clip, basis)."""
    from tf_talkface.face.normalize import (closed_mouth_frame, generalized_procrustes_mean,
                                            normalize_eskimez2020, procrustes_align)
    from tf_talkface.face.pca import PCABasis, fit_pca

    basis = None
    if basis_path:
        try:
            basis = PCABasis.load(basis_path)
        except FileNotFoundError as e:
            raise PrepareError(str(e)) from e
        if basis.dim != 2:
            raise PrepareError(f"--basis {basis_path}: a {basis.dim}D basis cannot be used with "
                               "dlib's 2D landmarks (convert 3D data with --from-hdf5 instead)")
        if basis.template is None:
            raise PrepareError(f"--basis {basis_path}: the basis has no template face")
        template = basis.template
    else:
        ids = train_ids
        closed = []
        for c in ids:
            try:
                aligned = procrustes_align(raws[c])
            except ValueError:  # degenerate clip: reported as skipped by the normalisation below
                continue
            closed.append(raws[c][closed_mouth_frame(aligned, rcfg.mouth_z_thresh)])
        template = generalized_procrustes_mean(np.stack(closed))
    norm, refs = {}, {}
    for c, r in raws.items():
        try:
            norm[c], refs[c] = normalize_eskimez2020(r, template, rcfg.mouth_z_thresh)
        except ValueError as e:  # degenerate landmarks: this clip only
            norm[c] = e
    if basis is None:
        ids = train_ids
        basis = fit_pca(np.concatenate([norm[c].reshape(len(norm[c]), -1) for c in ids
                                        if not isinstance(norm[c], Exception)]),
                        rcfg.n_pca, template=template,
                        source=f"fitted on the training split of {dataset_dir.name}")
    pca = {c: basis.project(v) for c, v in norm.items() if not isinstance(v, Exception)}
    return norm, pca, refs, basis


def prepare(videos: list[str], out: str | os.PathLike, recipe: str = "eskimez2018",
            workers: int | None = None, split: str = "0.8,0.1,0.1", seed: int = 0,
            split_by: str = "clip", cache_dir: str | None = None, basis: str | None = None,
            mean_shape: str | None = None, max_clips: int | None = None,
            keep_work: bool = False, progress: bool = True, overwrite: bool = False,
            runner: str = "local", beam_options: str | None = None) -> dict:
    """Build a TFRecord dataset from talking-face videos. Library entry point of the CLI.

    Args:
        videos: folders searched recursively for mpg/mp4/avi/mov/mkv/webm files.
        out: dataset folder (created). recipe: ``eskimez2018``, ``eskimez2020`` or
            ``atvgnet``.
        workers: processes (default: CPU count). split: train,val,test fractions.
        seed: split seed. split_by: ``clip`` or ``speaker``.
        cache_dir: landmark cache (default :func:`default_cache_dir`; ``"none"`` disables).
        basis: 2020/atvgnet recipes: reuse a PCA basis (+ template) (dataset folder or
            basis.json).
        mean_shape: 2018 recipe: a (68, 2) ``.npy`` mean shape (default: the original's).
        max_clips: only the first N videos (sorted), for quick trials.
        overwrite: replace a dataset already at ``out`` (built beside it and swapped in at the
            end: :func:`~tf_talkface.data.build.begin_dataset`); without it such an ``out`` is
            refused.
        runner: ``local`` (a process pool of ``workers``) or ``beam`` (the per-clip work as an
            Apache Beam pipeline, :mod:`tf_talkface.data.beam_runner`; same output).
        beam_options: Beam pipeline options as one string (default: the DirectRunner with
            ``workers`` processes).
    Returns:
        The manifest dict (also written to ``out/manifest.json``).
    Raises:
        PrepareError: bad arguments, an existing dataset without ``overwrite``, or no usable
            clip at all.
    """
    t0 = time.time()
    if recipe not in RECIPES:
        raise PrepareError(f"--recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    if split_by not in ("clip", "speaker"):
        raise PrepareError(f"--split-by {split_by!r}: choose clip or speaker")
    if runner not in RUNNERS:
        raise PrepareError(f"--runner {runner!r}: choose {' or '.join(RUNNERS)}")
    fractions = parse_split(split)
    rcfg = make_recipe(recipe)
    jobs = find_videos(videos)
    if max_clips is not None and max_clips < 1:
        raise PrepareError(f"--max-clips {max_clips}: give a number of videos >= 1")
    if max_clips:
        jobs = jobs[:max_clips]
    if not jobs:
        raise PrepareError(f"no video files ({', '.join(VIDEO_EXTS)}) under {', '.join(map(str, videos))}")
    out = Path(out)
    build = begin_dataset(out, overwrite)  # out itself, or .NAME.new beside an existing dataset
    settings_key = hashlib.sha1(json.dumps(rcfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    work_dir = build / f"{WORK_DIR}-{settings_key}"  # a resume never mixes recipes or settings
    work_dir.mkdir(exist_ok=True)
    cache = None if cache_dir == "none" else Path(cache_dir) if cache_dir else default_cache_dir()
    workers = workers or os.cpu_count() or 1
    log.info("%d videos, recipe %s, %d workers, landmark cache %s", len(jobs), recipe, workers, cache)

    if runner == "beam":  # the same per-clip function, as a Beam pipeline (docs/beam.md)
        from tf_talkface.data.beam_runner import beam_map, beam_options as full_options

        run_info = {"name": "beam", "options": full_options(beam_options, workers)}
        results = beam_map(_run_job, [(j, rcfg, work_dir, cache) for j in jobs], work_dir,
                           beam_options, workers)
    else:
        run_info = {"name": "local", "workers": workers}
        results = run_jobs(jobs, rcfg, work_dir, cache, workers, progress)
    usable = [r for r in results if r["ok"]]
    skipped = [{"clip_id": r["clip_id"], "source": r["source"], "reason": r["reason"]}
               for r in results if not r["ok"]]
    if not usable:
        raise PrepareError(f"no usable clip among {len(jobs)} videos; first reasons: "
                           + "; ".join(s["reason"] for s in skipped[:3]))

    keys = [r["clip_id"] if split_by == "clip" else r["speaker"] for r in usable]
    split_of = assign_splits(keys, fractions, seed)
    for r in usable:
        r["split"] = split_of[r["clip_id"] if split_by == "clip" else r["speaker"]]
    train_ids = [r["clip_id"] for r in usable if r["split"] == "train"]
    if not train_ids and recipe in ("eskimez2020", "atvgnet") and not basis:
        raise PrepareError("no clip in the training split: the template face and PCA basis are "
                           "fitted on training clips only; give --basis DATASET (e.g. the dataset "
                           "the model was trained on) to prepare an evaluation-only dataset")
    if not train_ids and recipe == "eskimez2018" and resolve_mean_shape(mean_shape)[0] is None:
        raise PrepareError("no clip in the training split and no mean shape: give --mean-shape "
                           "FILE (the 2018 mean shape) to prepare an evaluation-only dataset")

    def load(r):
        with np.load(work_dir / r["work"]) as z:
            return {k: z[k] for k in z.files}

    raws = {r["clip_id"]: load(r)["landmarks_raw"] for r in usable}
    manifest: dict = {
        "format_version": FORMAT_VERSION, "tool": "tf_talkface", "tool_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "recipe": rcfg.to_dict(),
        "sources": [str(v) for v in videos],
        "split": {"fractions": list(fractions), "seed": seed, "by": split_by},
        "landmark_cache": str(cache) if cache else None, "runner": run_info,
    }
    # From here on the build folder changes: drop an unfinished manifest first, so no reader pairs
    # it with a new basis.json or new shards (an existing dataset is never the build folder).
    (build / MANIFEST).unlink(missing_ok=True)
    pca = refs = None
    if recipe == "eskimez2018":
        norm, section = normalise_2018(raws, train_ids, mean_shape)
        manifest["normalisation"] = {"method": "eye alignment + expression transfer + /600",
                                     **section}
        schema = {"landmark_dim": 136, "feature_dim": rcfg.logmel.feature_dim, "n_pca": 0,
                  "audio_sample_rate": rcfg.logmel.sample_rate, "hop": rcfg.logmel.hop_length}
    elif recipe == "atvgnet":
        from tf_talkface.data.atvgnet_recipe import normalise_atvgnet
        norm = {r["clip_id"]: load(r)["landmarks"] for r in usable}
        pca, basis_obj, manifest["normalisation"], schema = normalise_atvgnet(
            norm, train_ids, rcfg, basis, out)
        basis_obj.save(build / "basis.json")
    else:
        norm, pca, refs, basis_obj = normalise_2020(raws, train_ids, rcfg, basis, out)
        basis_obj.save(build / "basis.json")
        manifest["normalisation"] = {
            "method": "Procrustes to template + identity removal (closed-mouth frame) + PCA",
            "basis_file": "basis.json", "basis_source": basis_obj.source,
            "n_pca": basis_obj.n_components,
            "explained_variance_ratio": None if basis_obj.explained_variance_ratio is None
            else np.round(basis_obj.explained_variance_ratio, 6).tolist()}
        schema = {"landmark_dim": 136, "feature_dim": 0, "n_pca": basis_obj.n_components,
                  "audio_sample_rate": rcfg.waveform.sample_rate, "hop": rcfg.waveform.hop}
    manifest["schema"] = schema
    failed = {c: v for c, v in norm.items() if isinstance(v, Exception)}
    for c, e in failed.items():
        r = next(r for r in usable if r["clip_id"] == c)
        skipped.append({"clip_id": c, "source": r["source"], "reason": f"{r['source']}: normalisation failed: {e}"})
        del norm[c]
    usable = [r for r in usable if r["clip_id"] not in failed]
    train_ids = [c for c in train_ids if c not in failed]
    if not usable:
        raise PrepareError("no usable clip: normalisation failed for all of them")

    clips = []
    for r in usable:
        c = {k: r[k] for k in ("clip_id", "speaker", "source", "split", "num_frames", "fps_src",
                               "frame_adjust", "interpolated_frames", "multi_face_frames")}
        if refs is not None:
            c["closed_mouth_frame"] = refs[r["clip_id"]]
        clips.append(c)
    manifest["clips"] = clips
    manifest["skipped"] = skipped
    manifest["counts"] = {s: sum(1 for c in clips if c["split"] == s) for s in SPLITS}
    manifest["counts"]["skipped"] = len(skipped)
    manifest["counts"]["frames"] = int(sum(c["num_frames"] for c in clips))
    # statistics of the training split (of all clips for an evaluation-only dataset; recorded)
    tr = train_ids or list(norm)
    manifest["feature_stats"] = {"landmarks": feature_stats([norm[c] for c in tr]),
                                 "from": "train" if train_ids else "all clips (no training split)"}
    if pca is not None:
        manifest["feature_stats"]["pca"] = feature_stats([pca[c] for c in tr])

    from tf_talkface.data.atvgnet_recipe import record_fields
    from tf_talkface.data.records import ClipRecord

    def records():
        for r in usable:
            z = load(r)
            cid = r["clip_id"]
            yield ClipRecord(clip_id=cid, speaker=r["speaker"], split=r["split"], source=r["source"],
                             recipe=recipe, audio=z["audio"], audio_sample_rate=schema["audio_sample_rate"],
                             landmarks_raw=z["landmarks_raw"], landmarks=norm[cid],
                             features=z.get("features"), pca=None if pca is None else pca[cid],
                             **record_fields(z))

    if recipe == "eskimez2018":
        feats = [load(r)["features"] for r in usable if r["split"] == "train"] or \
                [load(r)["features"] for r in usable]
        manifest["feature_stats"]["features"] = feature_stats(feats)
    if recipe == "atvgnet":
        mf = [load(r)["mfcc"] for r in usable if r["split"] == "train"] or \
             [load(r)["mfcc"] for r in usable]
        manifest["feature_stats"]["mfcc"] = feature_stats(mf)
    manifest["seconds"] = round(time.time() - t0, 1)
    manifest = write_dataset(build, manifest, records())
    if not keep_work:
        shutil.rmtree(work_dir, ignore_errors=True)
    finish_dataset(build, out)  # an old dataset is replaced only now, by the complete new one
    return manifest


def summarize(manifest: dict) -> str:
    """One human-readable paragraph about a prepared dataset, with the skip reasons."""
    c = manifest["counts"]
    lines = [f"{c['train']} train / {c['val']} val / {c['test']} test clips "
             f"({c['frames']} frames), {c['skipped']} skipped, {len(manifest['shards'])} shards, "
             f"{manifest.get('seconds', '?')} s"]
    for s in manifest["skipped"][:20]:
        lines.append(f"  skipped {s['source']}: {s['reason']}")
    if len(manifest["skipped"]) > 20:
        lines.append(f"  ... and {len(manifest['skipped']) - 20} more (see manifest.json)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tf_talkface.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", action="append", metavar="DIR",
                   help="folder of talking-face videos (repeatable)")
    p.add_argument("--from-hdf5", metavar="FILE", help="convert an original HDF5 training file")
    p.add_argument("--layout", choices=HDF5_LAYOUTS, help="layout of --from-hdf5")
    p.add_argument("--out", required=True, help="dataset folder, e.g. tfrecords/grid_s1_2018")
    p.add_argument("--recipe", choices=RECIPES, default="eskimez2018")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions")
    p.add_argument("--split-by", choices=("clip", "speaker"), default="clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--basis", help="2020/atvgnet: reuse a PCA basis/template (dataset folder, "
                                   "basis.json, or a folder in the original 2020 layout for "
                                   "--from-hdf5)")
    p.add_argument("--mean-shape", help="2018: (68,2) .npy mean shape (default: the original's)")
    p.add_argument("--cache-dir", help="landmark cache folder ('none' to disable)")
    p.add_argument("--max-clips", type=int, help="only the first N videos (quick trials)")
    p.add_argument("--keep-work", action="store_true", help="keep per-clip work files")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset at --out (built beside it, swapped in when "
                        "complete; without this flag an existing dataset is refused)")
    p.add_argument("--runner", choices=RUNNERS, default="local",
                   help="per-clip work in a local process pool (default) or as an Apache Beam "
                        "pipeline (needs the beam extra; docs/beam.md)")
    p.add_argument("--beam-options", metavar="ARGS",
                   help='Beam pipeline options, e.g. "--runner=DirectRunner --direct_num_workers=2" '
                        "(default: the DirectRunner with --workers processes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ok, 1 nothing usable, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--beam-options" in argv[:-1]:  # its value starts with "--": argparse would take it for
        i = argv.index("--beam-options")  # an option of its own unless attached with "="
        argv[i:i + 2] = [f"--beam-options={argv[i + 1]}"]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.from_hdf5:
            if args.videos:
                raise PrepareError("give either --videos or --from-hdf5, not both")
            if not args.layout:
                raise PrepareError("--from-hdf5 needs --layout eskimez2018|eskimez2020")
            manifest = import_hdf5(args.from_hdf5, args.out, layout=args.layout, split=args.split,
                                   seed=args.seed, basis=args.basis, overwrite=args.overwrite)
        else:
            if not args.videos:
                raise PrepareError("give --videos DIR (or --from-hdf5 FILE --layout ...)")
            manifest = prepare(args.videos, args.out, recipe=args.recipe, workers=args.workers,
                               split=args.split, seed=args.seed, split_by=args.split_by,
                               cache_dir=args.cache_dir, basis=args.basis,
                               mean_shape=args.mean_shape, max_clips=args.max_clips,
                               keep_work=args.keep_work, progress=not args.quiet,
                               overwrite=args.overwrite, runner=args.runner,
                               beam_options=args.beam_options)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if str(e).startswith("no usable clip") else 2
    except OSError as e:  # read-only/full disk, permissions: one line naming the path
        print(f"prepare: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    print(summarize(manifest))
    return 0


if __name__ == "__main__":
    # run as tf_talkface.prepare, not as __main__: what Beam's workers unpickle (the per-clip
    # function, ClipJob) must be importable there by its module's name
    from tf_talkface.prepare import main as prepare_main

    sys.exit(prepare_main())
