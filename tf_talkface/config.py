"""Settings as dataclasses: one source of truth for features, landmarks and recipes.

Every artefact (dataset manifest, training run, SavedModel card) stores the ``to_dict()`` of the
config that made it, and :func:`check_compatible` refuses to combine incompatible ones.

Time is in frames at :data:`FPS` = 25 fps (one frame = 40 ms) everywhere inside the library.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

FPS = 25
"""Frame rate of every landmark sequence inside the library (frames per second)."""

N_LANDMARKS = 68


@dataclass(frozen=True)
class LogMelConfig:
    """Eskimez et al. 2018 audio front-end (reference.md, "Audio features").

    Attributes:
        sample_rate: Hz (44100 in the original).
        win_s / hop_s: STFT window and hop in seconds; the original uses window = hop = n_fft
            = 0.04 s (1764 samples at 44.1 kHz), i.e. one STFT column per 40 ms video frame.
        n_mels: mel bands (librosa's Slaney filterbank, fmin 0, fmax sr/2).
        log_floor: added before the natural log (1e-16 in the original).
        use_deltas: concatenate delta and delta-delta (128 dims); the static log-mel is unused.
    """

    sample_rate: int = 44100
    win_s: float = 0.04
    hop_s: float = 0.04
    n_mels: int = 64
    log_floor: float = 1e-16

    @property
    def n_fft(self) -> int:
        return int(round(self.sample_rate * self.win_s))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_s))

    @property
    def feature_dim(self) -> int:
        """Dims per frame: delta + delta-delta of ``n_mels`` log-mel bands."""
        return 2 * self.n_mels


@dataclass(frozen=True)
class WaveformConfig:
    """Eskimez et al. 2020 raw-waveform input (reference.md, "Input").

    Attributes:
        sample_rate: Hz (8000).
        hop: samples per 40 ms frame (320 at 8 kHz).
        window_frames: frames per input window (7 -> 2240 samples = 280 ms), centred on the
            target frame, so the model hears ``window_frames // 2`` frames of look-ahead.
    """

    sample_rate: int = 8000
    hop: int = 320
    window_frames: int = 7

    @property
    def window(self) -> int:
        return self.hop * self.window_frames

    @property
    def lookahead_frames(self) -> int:
        return self.window_frames // 2


@dataclass(frozen=True)
class LandmarkConfig:
    """Face landmark extraction settings (dlib HOG detector + 68-point shape predictor).

    Attributes:
        upsample: dlib detector upsample count on the (possibly downscaled) frame (original: 1
            on the full frame). 0 finds faces of >= ~80 px in the detection image (GRID faces
            are ~125 px); use 1 for footage with small faces.
        detect_max_side: frames are downscaled so their longer side is at most this many
            pixels before detection (0 = never). The shape predictor always runs on the
            full-resolution frame. Differs from the original on purpose: much faster on HD video.
        redetect_every: run the detector every N frames and reuse the last face box in
            between (1 = detect on every frame, as the original). Faces move little in 40 ms.
            Measured on 12 GRID clips (scripts/bench_prepare.py): these defaults with 2 workers
            run 17x faster than the original's way, 0.6 px mean difference.
        max_gap: runs of at most this many frames without a face are linearly interpolated;
            longer gaps make the clip unusable.
    """

    upsample: int = 0
    detect_max_side: int = 640
    redetect_every: int = 5
    max_gap: int = 2


@dataclass(frozen=True)
class AtvgnetConfig:
    """ATVGnet pixel data (Chen et al. 2019; docs ``atvgnet_davs.md`` A2, A3, A7).

    Attributes:
        sample_rate: Hz of the stored audio and of the MFCC (16000, the original's).
        image_size: side of the aligned face crop in pixels (128).
        jpeg_quality: OpenCV JPEG quality of the stored crops (0-100).
        smooth_frames: centred moving average (frames) over the crop's similarity parameters,
            against jitter (1 = every frame its own fit, as the original).
        landmark_scale: factor of the unit-norm normalised landmarks (5, the original's).
    """

    sample_rate: int = 16000
    image_size: int = 128
    jpeg_quality: int = 90
    smooth_frames: int = 5
    landmark_scale: float = 5.0

    @property
    def hop(self) -> int:
        """Audio samples per 25-fps video frame (640 at 16 kHz)."""
        return self.sample_rate // FPS


@dataclass(frozen=True)
class RecipeConfig:
    """A recipe is data: which targets and inputs a dataset holds.

    Attributes:
        name: ``"eskimez2018"`` (log-mel delta features, 136-dim eye-aligned + expression-
            transferred landmarks / 600), ``"eskimez2020"`` (8 kHz waveform, Procrustes-aligned
            identity-removed landmarks projected on ``n_pca`` PCA components) or ``"atvgnet"``
            (aligned 128-px face crops as JPEG, their normalised landmarks and ``n_pca`` PCA
            coefficients, 16 kHz audio and its MFCC; :class:`AtvgnetConfig`).
        n_pca: number of PCA components (2020 and atvgnet recipes; 6 in both papers).
        mouth_z_thresh: |z-score| threshold of mouth width for closed-mouth frame candidates.
    """

    name: str = "eskimez2018"
    logmel: LogMelConfig = field(default_factory=LogMelConfig)
    waveform: WaveformConfig = field(default_factory=WaveformConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    n_pca: int = 6
    mouth_z_thresh: float = 1.0
    max_frame_mismatch: int = 1
    atvgnet: AtvgnetConfig = field(default_factory=AtvgnetConfig)

    @property
    def sample_rate(self) -> int:
        """Hz of the audio this recipe stores."""
        if self.name == "eskimez2018":
            return self.logmel.sample_rate
        if self.name == "atvgnet":
            return self.atvgnet.sample_rate
        return self.waveform.sample_rate

    @property
    def hop(self) -> int:
        """Audio samples per 25-fps frame of this recipe."""
        if self.name == "eskimez2018":
            return self.logmel.hop_length
        if self.name == "atvgnet":
            return self.atvgnet.hop
        return self.waveform.hop

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecipeConfig":
        d = dict(d)
        d["logmel"] = LogMelConfig(**d.get("logmel", {}))
        d["waveform"] = WaveformConfig(**d.get("waveform", {}))
        d["landmarks"] = LandmarkConfig(**d.get("landmarks", {}))
        d["atvgnet"] = AtvgnetConfig(**d.get("atvgnet", {}))
        return cls(**d)


RECIPES = ("eskimez2018", "eskimez2020", "atvgnet")
HDF5_LAYOUTS = ("eskimez2018", "eskimez2020")
"""Recipes whose original HDF5 files ``prepare --from-hdf5`` imports."""


def recipe(name: str, **overrides: Any) -> RecipeConfig:
    """Return the default :class:`RecipeConfig` of a named recipe.

    Raises:
        ValueError: unknown recipe name.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RecipeConfig(name=name, **overrides)


class IncompatibleConfigError(ValueError):
    """Two artefacts were made with settings that cannot be combined."""


def check_compatible(a: dict[str, Any], b: dict[str, Any], keys: list[str], what: str) -> None:
    """Raise :class:`IncompatibleConfigError` naming every dotted ``key`` where ``a`` and ``b`` differ."""
    diffs = []
    for key in keys:
        va, vb = a, b
        for part in key.split("."):
            va = va.get(part) if isinstance(va, dict) else None
            vb = vb.get(part) if isinstance(vb, dict) else None
        if va != vb:
            diffs.append(f"{key}: {va!r} != {vb!r}")
    if diffs:
        raise IncompatibleConfigError(f"{what}: incompatible settings: " + "; ".join(diffs))
