"""Import of the original projects' HDF5 training files into tf_talkface TFRecords.

Layouts (reference.md):
    ``eskimez2018``: ``flmark`` (N, 75, 136) normalised landmarks, ``MelFeatures`` (N, 75, 128)
        log-mel delta features. No audio and no raw landmarks are stored, so the records have
        an empty ``audio_pcm16`` and no ``landmarks_raw``.
    ``eskimez2020``: ``landmarks`` (N, 75, 68*D) (3D in the original: 204), ``speech``
        (N, samples) at 8 kHz. PCA coefficients are computed with ``basis`` (the original
        ``mean_shape.npy``/``eigen_vectors.npy`` folder, a basis.json or a dataset), or with a
        basis fitted on the training split when none is given or found.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from tf_talkface import __version__
from tf_talkface.config import HDF5_LAYOUTS, recipe as make_recipe
from tf_talkface.data.build import (PrepareError, assign_splits, begin_dataset, feature_stats,
                                    finish_dataset, parse_split, write_dataset)
from tf_talkface.data.manifest import FORMAT_VERSION, SPLITS


def import_hdf5(path: str | os.PathLike, out: str | os.PathLike, layout: str,
                split: str = "0.8,0.1,0.1", seed: int = 0, basis: str | None = None,
                overwrite: bool = False) -> dict:
    """Convert one original HDF5 file into a dataset folder; returns its manifest.

    Each HDF5 row becomes one clip ``<file stem>/<row index>`` with speaker ``<file stem>``.

    An existing dataset at ``out`` is refused unless ``overwrite`` (then replaced only once the
    new one is complete: :func:`~tf_talkface.data.build.begin_dataset`).

    Raises:
        PrepareError: unreadable file, missing datasets, or inconsistent shapes (message names
            the file and the dataset); an existing dataset at ``out`` without ``overwrite``.
    """
    import h5py

    from tf_talkface.data.records import ClipRecord
    from tf_talkface.face.pca import PCABasis, fit_pca
    from tf_talkface.resources import shared_data_dir

    if layout not in HDF5_LAYOUTS:
        raise PrepareError(f"--layout {layout!r}: choose one of {', '.join(HDF5_LAYOUTS)}")
    fractions = parse_split(split)
    path = Path(path)
    need = ("flmark", "MelFeatures") if layout == "eskimez2018" else ("landmarks", "speech")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in need if k not in f]
            if missing:
                raise PrepareError(f"{path}: not a {layout} HDF5 file: datasets {missing} missing "
                                   f"(found {sorted(f.keys())})")
            a, b = (np.asarray(f[k][...], np.float32) for k in need)
    except OSError as e:
        raise PrepareError(f"{path}: cannot read HDF5 ({e})") from e
    if a.ndim != 3 or len(a) != len(b) or len(a) == 0:
        raise PrepareError(f"{path}: {need[0]} {a.shape} and {need[1]} {b.shape} do not pair up")
    # The original 2018 extractor resizes its datasets one row past the last clip: drop
    # trailing all-zero rows.
    keep = ~((np.abs(a).reshape(len(a), -1).max(1) == 0) & (np.abs(b).reshape(len(b), -1).max(1) == 0))
    a, b = a[keep], b[keep]
    n, t = a.shape[:2]
    stem = path.stem
    ids = [f"{stem}/{i:06d}" for i in range(n)]
    split_of = assign_splits(ids, fractions, seed)
    train = [i for i, c in enumerate(ids) if split_of[c] == "train"] or list(range(n))
    rcfg = make_recipe(layout)
    out = Path(out)
    build = begin_dataset(out, overwrite)
    manifest = {
        "format_version": FORMAT_VERSION, "tool": "tf_talkface", "tool_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "recipe": rcfg.to_dict(),
        "sources": [str(path)], "imported_from_hdf5": {"file": str(path), "layout": layout},
        "split": {"fractions": list(fractions), "seed": seed, "by": "clip"},
    }
    if layout == "eskimez2018":
        if a.shape[2] != 136 or b.shape[1:] != (t, 128):
            raise PrepareError(f"{path}: expected flmark (N, T, 136) and MelFeatures (N, T, 128), "
                               f"got {a.shape} and {b.shape}")
        lm, feats, pca, audio_sr = a.reshape(n, t, 68, 2), b, None, 0
        manifest["normalisation"] = {"method": "as stored in the original HDF5 (2018 layout)"}
        manifest["schema"] = {"landmark_dim": 136, "feature_dim": 128, "n_pca": 0,
                              "audio_sample_rate": 0, "hop": rcfg.logmel.hop_length,
                              "raw_landmarks": False}
        manifest["feature_stats"] = {"landmarks": feature_stats([lm[train]]),
                                     "features": feature_stats([feats[train]])}
    else:
        d = a.shape[2] // 68
        if a.shape[2] != 68 * d or d not in (2, 3) or b.ndim != 2:
            raise PrepareError(f"{path}: expected landmarks (N, T, 136|204) and speech (N, samples), "
                               f"got {a.shape} and {b.shape}")
        lm = a.reshape(n, t, 68, d)
        if basis is None:
            ref = (shared_data_dir() or Path("/nonexistent")) / "reference" / "eskimez2020"
            basis = str(ref) if d == 3 and ref.is_dir() else None
        if basis:
            try:
                b_obj = PCABasis.load(basis)
            except FileNotFoundError as e:
                raise PrepareError(str(e)) from e
            if b_obj.dim != d:
                raise PrepareError(f"--basis {basis}: {b_obj.dim}D basis for {d}D landmarks in {path}")
        else:
            b_obj = fit_pca(lm[train].reshape(-1, 68 * d), rcfg.n_pca,
                            source=f"fitted on the training split of {path.name}")
        b_obj.save(build / "basis.json")
        pca = b_obj.project(lm)
        feats, audio_sr = None, rcfg.waveform.sample_rate
        hop = rcfg.waveform.hop
        target = t * hop
        b = np.pad(b[:, :target], ((0, 0), (0, max(0, target - b.shape[1]))))
        manifest["normalisation"] = {"method": "as stored in the original HDF5 (2020 layout)",
                                     "basis_file": "basis.json", "basis_source": b_obj.source,
                                     "n_pca": b_obj.n_components}
        manifest["schema"] = {"landmark_dim": 68 * d, "feature_dim": 0, "n_pca": b_obj.n_components,
                              "audio_sample_rate": audio_sr, "hop": hop, "raw_landmarks": False}
        manifest["feature_stats"] = {"landmarks": feature_stats([lm[train]]),
                                     "pca": feature_stats([pca[train]])}
    manifest["clips"] = [{"clip_id": c, "speaker": stem, "source": f"{path.name}#{i}",
                          "split": split_of[c], "num_frames": int(t)} for i, c in enumerate(ids)]
    manifest["skipped"] = []
    manifest["counts"] = {s: sum(1 for c in manifest["clips"] if c["split"] == s) for s in SPLITS}
    manifest["counts"].update(skipped=0, frames=int(n * t))

    def records():
        for i, c in enumerate(ids):
            yield ClipRecord(
                clip_id=c, speaker=stem, split=split_of[c], source=f"{path.name}#{i}", recipe=layout,
                audio=(np.zeros(0, np.float32) if layout == "eskimez2018"
                       else np.clip(b[i] / max(1e-9, float(np.abs(b[i]).max())), -1, 1)
                       if np.abs(b[i]).max() > 1 else b[i]),
                audio_sample_rate=audio_sr, landmarks_raw=None, landmarks=lm[i],
                features=None if feats is None else feats[i], pca=None if pca is None else pca[i])

    manifest = write_dataset(build, manifest, records())
    finish_dataset(build, out)
    return manifest
