"""PCA basis of flattened landmark vectors (Eskimez et al. 2020: 6 components).

Vectors are point-major flattenings of (68, D) shapes: x0, y0[, z0], x1, ... (length 68*D).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PCABasis:
    """A PCA basis with the template face used for identity removal.

    Attributes:
        mean: (68*D,) float32 mean vector.
        components: (k, 68*D) float32 orthonormal principal axes (rows).
        template: (68, D) float32 template face (standardised), or None.
        explained_variance_ratio: (k,) float32, or None when unknown (e.g. reference basis).
        source: free text: where the basis came from.
    """

    mean: np.ndarray
    components: np.ndarray
    template: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None
    source: str = ""

    def __post_init__(self):
        self.mean = np.asarray(self.mean, np.float32).reshape(-1)
        self.components = np.asarray(self.components, np.float32)
        if self.components.ndim != 2 or self.components.shape[1] != self.mean.shape[0]:
            raise ValueError(f"PCABasis: components {self.components.shape} do not match mean "
                             f"{self.mean.shape}")
        if self.template is not None:
            self.template = np.asarray(self.template, np.float32).reshape(68, -1)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        """Landmark dimensionality D (2 or 3)."""
        return self.mean.shape[0] // 68

    def project(self, x: np.ndarray) -> np.ndarray:
        """(..., 68, D) or (..., 68*D) landmarks -> (..., k) float32 coefficients."""
        x = np.asarray(x, np.float32)
        flat = x.reshape(*x.shape[:-2], -1) if x.shape[-2:] == (68, self.dim) else x
        if flat.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"PCABasis.project: vectors of {flat.shape[-1]} dims, basis has "
                             f"{self.mean.shape[0]}")
        return ((flat - self.mean) @ self.components.T).astype(np.float32)

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """(..., k) coefficients -> (..., 68, D) float32 landmarks."""
        codes = np.asarray(codes, np.float32)
        flat = codes @ self.components + self.mean
        return flat.reshape(*codes.shape[:-1], 68, self.dim).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(), "components": self.components.tolist(),
            "template": None if self.template is None else self.template.tolist(),
            "explained_variance_ratio": None if self.explained_variance_ratio is None
            else np.asarray(self.explained_variance_ratio).tolist(),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PCABasis":
        return cls(mean=np.array(d["mean"]), components=np.array(d["components"]),
                   template=None if d.get("template") is None else np.array(d["template"]),
                   explained_variance_ratio=None if d.get("explained_variance_ratio") is None
                   else np.array(d["explained_variance_ratio"], np.float32),
                   source=d.get("source", ""))

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON atomically (temp file + rename)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f)
            mask = os.umask(0o022)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; others (a server) read it
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCABasis":
        """Load a basis from: a ``basis.json`` file, a tf_talkface dataset folder (its
        ``basis.json``), or a folder in the original 2020 layout (``mean_shape.npy`` (1, 68*D),
        ``eigen_vectors.npy`` (k, 68*D), optional ``mean.npy`` (68, D) template).

        Raises:
            FileNotFoundError: nothing usable at ``path``.
        """
        p = Path(path)
        if p.is_dir() and (p / "basis.json").is_file():
            p = p / "basis.json"
        if p.is_file():
            with open(p) as f:
                return cls.from_dict(json.load(f))
        if p.is_dir() and (p / "eigen_vectors.npy").is_file() and (p / "mean_shape.npy").is_file():
            tmpl = np.load(p / "mean.npy") if (p / "mean.npy").is_file() else None
            return cls(mean=np.load(p / "mean_shape.npy"), components=np.load(p / "eigen_vectors.npy"),
                       template=tmpl, source=f"original 2020 layout: {p}")
        raise FileNotFoundError(
            f"{path}: no PCA basis found (expected basis.json, a tf_talkface dataset folder, or a "
            "folder with mean_shape.npy + eigen_vectors.npy)")


def fit_pca(vectors: np.ndarray, n_components: int, template: np.ndarray | None = None,
            source: str = "") -> PCABasis:
    """Fit a PCA basis by SVD of the centred data.

    Args:
        vectors: (N, 68*D) or (N, 68, D) training landmark vectors (training split only).
        n_components: k (6 in the 2020 paper).
    Returns:
        :class:`PCABasis`; component signs are fixed so each axis' largest-|.| entry is positive
        (deterministic across runs).
    Raises:
        ValueError: fewer vectors than components.
    """
    x = np.asarray(vectors, np.float64)
    x = x.reshape(len(x), -1)
    if len(x) < n_components:
        raise ValueError(f"fit_pca: {len(x)} vectors cannot give {n_components} components")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    var = s ** 2
    evr = (var[:n_components] / var.sum()).astype(np.float32)
    return PCABasis(mean=mean, components=comps, template=template,
                    explained_variance_ratio=evr, source=source)
