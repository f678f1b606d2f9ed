"""Voice perturbation of a prepared 2018 or 2020 dataset: perturbed copies of the training clips.

``python -m tf_talkface.data.voices tfrecords/grid_s1_2020 --copies 2 [--workers 2]``

Why (issue 11): with one training speaker the model learns one voice. The standard remedy when
speakers are few is to perturb the voice: shift the fundamental frequency (F0, x0.6-1.8 spans
male <-> female) and warp the spectral envelope along frequency (vocal-tract length, factors
0.8-1.25). Both are done with WORLD analysis/synthesis (the ``pyworld`` package: DIO +
StoneMask F0, CheapTrick envelope, D4C aperiodicity, 5-ms frames, at 16 kHz: D4C finds no
periodic band below 3 kHz, so at 8 kHz it would turn every voice into a whisper), which keeps
the timing, so the copy keeps the clip's landmarks frame for frame.

Decided by measurement (issue 11): WORLD costs about 0.3 s per 3-s clip here, so copies
made once (minutes for GRID s1) beat on-line augmentation (that cost on every epoch). The copies
go into the training split only, as an extra shard listed in the manifest with the settings
(``voice_perturbation``); validation and test stay untouched, and the PCA basis, template and
statistics (fitted on the original training clips) are unchanged. Re-running replaces the
previous copies. The 2018 (LSTM) recipe works the same way (session 2 of issue 11): its records
keep the 44.1-kHz audio, so the copy is resynthesised at 44.1 kHz and its log-mel delta features
are recomputed exactly as ``prepare`` computes them (the feature statistics of the manifest stay
those of the original clips); the on-line mel-axis warp
(:func:`tf_talkface.data.pipeline.mel_warp`) can still be added on top.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from tf_talkface.data.manifest import DatasetError, load_manifest, write_json_atomic

F0_RANGE = (0.6, 1.8)
"""F0 factor range (log-uniform)."""
FORMANT_RANGE = (0.8, 1.25)
"""Spectral-envelope warp factor range (log-uniform); > 1 moves formants up (shorter tract)."""
FRAME_PERIOD_MS = 5.0


def _warp_envelope(env: np.ndarray, alpha: float) -> np.ndarray:
    """Warp a (frames, bins) spectral envelope along frequency: bin ``f`` takes ``f / alpha``."""
    n = env.shape[1]
    src = np.clip(np.arange(n) / alpha, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    fr = src - lo
    return np.ascontiguousarray(env[:, lo] * (1 - fr) + env[:, hi] * fr)


def perturb_voice(y: np.ndarray, sample_rate: int, f0_factor: float, formant_factor: float
                  ) -> np.ndarray:
    """WORLD resynthesis of ``y`` with F0 x ``f0_factor`` and the envelope warped by
    ``formant_factor``; same length and level (active RMS) as the input.

    Args:
        y: float (samples,) mono speech in [-1, 1].
        sample_rate: Hz.

    Returns:
        float32 (samples,), clipped to [-1, 1].

    Raises:
        ValueError: empty input or non-positive factors.
    """
    import pyworld
    from scipy.signal import resample_poly

    if len(y) == 0 or not (f0_factor > 0 and formant_factor > 0):
        raise ValueError(f"perturb_voice: empty input or bad factors ({f0_factor}, {formant_factor})")
    x = np.ascontiguousarray(y, np.float64)
    # D4C measures aperiodicity in bands from 3 kHz up; at 8 kHz it finds none and marks every
    # bin aperiodic (a whisper). Analyse and synthesise at >= 16 kHz, then come back.
    up = max(1, int(np.ceil(16000 / sample_rate)))
    fs = sample_rate * up
    z = resample_poly(x, up, 1) if up > 1 else x
    f0, t = pyworld.dio(z, fs, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(z, f0, t, fs)
    sp = pyworld.cheaptrick(z, f0, t, fs)
    ap = pyworld.d4c(z, f0, t, fs)
    out = pyworld.synthesize(np.ascontiguousarray(f0 * f0_factor), _warp_envelope(sp, formant_factor),
                             _warp_envelope(ap, formant_factor), fs, frame_period=FRAME_PERIOD_MS)
    out = resample_poly(out, 1, up) if up > 1 else out
    out = out[:len(x)] if len(out) >= len(x) else np.pad(out, (0, len(x) - len(out)))
    rms_in, rms_out = np.sqrt(np.mean(x ** 2)), np.sqrt(np.mean(out ** 2))
    if rms_out > 0:
        out = out * (rms_in / rms_out)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def draw_factors(seed: int, clip_id: str, copy: int) -> tuple[float, float]:
    """Deterministic (F0, formant) factors of one copy, log-uniform in the ranges above."""
    h = int.from_bytes(hashlib.sha1(f"{seed}/{clip_id}/{copy}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(h)
    f0 = float(np.exp(rng.uniform(*np.log(F0_RANGE))))
    fm = float(np.exp(rng.uniform(*np.log(FORMANT_RANGE))))
    return f0, fm


def _copy_job(job: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """One copy (run in a worker process): the perturbed audio as it will be stored (16-bit
    rounded, float32) and, for a 2018 dataset, its log-mel delta features ((frames, 128)
    float32, the first ``n_frames``)."""
    from tf_talkface.data.records import pcm16_bytes, pcm16_to_float

    audio, sr, f0, fm, logmel, n_frames = job
    y = pcm16_to_float(pcm16_bytes(perturb_voice(audio, sr, f0, fm)))  # as stored
    if logmel is None:
        return y, None
    from tf_talkface.audio.features import logmel_delta_features

    return y, logmel_delta_features(y, logmel)[:n_frames].astype(np.float32)


def add_voice_copies(dataset_dir: str | Path, copies: int = 2, seed: int = 0,
                     progress: bool = True, workers: int = 1) -> dict:
    """Add ``copies`` voice-perturbed copies of every training clip of a 2018 or 2020 dataset
    (2018: the copy's log-mel delta features recomputed from its audio, as ``prepare`` does).

    ``workers`` > 1 runs WORLD in that many processes; the copies do not depend on it (each
    copy's factors come from ``(seed, clip id, copy)``, :func:`draw_factors`).

    Writes ``train-voices-00000.tfrecord`` (temp file + rename), then the manifest (atomic):
    the shard, ``counts.train`` and ``voice_perturbation`` (copies, seed, ranges, library,
    clips, seconds). An earlier voice shard is replaced. Clip ids get ``#v<k>``.

    Returns:
        the ``voice_perturbation`` record.

    Raises:
        DatasetError: not a 2018/2020 dataset with audio, ``copies < 1`` or ``workers < 1``.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.data.records import ClipRecord, serialize_clip

    d = Path(dataset_dir)
    m = load_manifest(d)
    recipe = m["recipe"]["name"]
    if recipe not in ("eskimez2018", "eskimez2020") or not m["schema"].get("audio_sample_rate"):
        raise DatasetError(f"{d}: voice copies need an eskimez2018/eskimez2020 dataset with audio "
                           f"(this one is {recipe})")
    logmel = None
    if recipe == "eskimez2018":
        from tf_talkface.config import RecipeConfig

        logmel = RecipeConfig.from_dict(m["recipe"]).logmel
    if copies < 1:
        raise DatasetError(f"--copies must be >= 1, got {copies}")
    if workers < 1:
        raise DatasetError(f"--workers must be >= 1, got {workers}")
    sr = int(m["schema"]["audio_sample_rate"])
    old = m.get("voice_perturbation")
    shards = [s for s in m["shards"] if not s["file"].startswith("train-voices-")]
    base = dict(m, shards=shards)
    if old:
        base["counts"] = dict(m["counts"], train=m["counts"]["train"] - old["clips"])
    name = "train-voices-00000.tfrecord"
    tmp = d / (name + ".tmp")
    t0 = time.time()
    n = 0
    clips = read_clips(d, "train", base)
    total = base["counts"]["train"]
    pool = None
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    run = pool.map if pool is not None else map
    batch = max(1, 4 * workers)  # clips read ahead per round of jobs (bounded memory)

    def write_batch(w, group: list[dict]) -> int:
        jobs = [(c["audio"], sr, *draw_factors(seed, c["clip_id"], k), logmel,
                 len(c["landmarks"])) for c in group for k in range(1, copies + 1)]
        out = iter(run(_copy_job, jobs))
        for c in group:
            for k in range(1, copies + 1):
                y, feats = next(out)
                rec = ClipRecord(
                    clip_id=f"{c['clip_id']}#v{k}", speaker=c["speaker"], split="train",
                    source=c["source"], recipe=recipe, audio=y, audio_sample_rate=sr,
                    landmarks_raw=c["landmarks_raw"], landmarks=c["landmarks"],
                    features=feats, pca=c["pca"])
                w.write(serialize_clip(rec))
        return len(jobs)

    try:
        with tf.io.TFRecordWriter(str(tmp)) as w:
            group: list[dict] = []
            for c in tqdm(clips, total=total, disable=not progress, desc="voice copies",
                          unit="clip"):
                group.append({
                    "clip_id": c["clip_id"].numpy().decode(), "audio": c["audio"].numpy(),
                    "landmarks": c["landmarks"].numpy(), "speaker": c["speaker"].numpy().decode(),
                    "source": c["source"].numpy().decode(),
                    "landmarks_raw": c["landmarks_raw"].numpy() if "landmarks_raw" in c else None,
                    "pca": c["pca"].numpy() if "pca" in c else None})
                if len(group) == batch:
                    n += write_batch(w, group)
                    group = []
            if group:
                n += write_batch(w, group)
    finally:
        if pool is not None:
            pool.shutdown()
    tmp.replace(d / name)
    record = {"copies": copies, "seed": seed, "f0_range": list(F0_RANGE),
              "formant_range": list(FORMANT_RANGE), "library": "pyworld (WORLD: DIO, StoneMask, "
              "CheapTrick, D4C)", "clips": n, "seconds": round(time.time() - t0, 1), "shard": name}
    base["shards"] = shards + [{"file": name, "split": "train", "n_clips": n,
                                "bytes": (d / name).stat().st_size}]
    base["counts"] = dict(base["counts"], train=base["counts"]["train"] + n)
    base["voice_perturbation"] = record
    write_json_atomic(d / "manifest.json", base)
    return record


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 on success, 2 on a bad dataset."""
    p = argparse.ArgumentParser(prog="python -m tf_talkface.data.voices", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="prepared eskimez2018 or eskimez2020 dataset folder")
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1,
                   help="processes for WORLD (the copies are the same for any number)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        rec = add_voice_copies(a.dataset, a.copies, a.seed, progress=not a.quiet,
                               workers=a.workers)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.dataset}: {rec['clips']} voice copies in {rec['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
