"""ATVGnet sizes as data: one dataclass for AT-net, VG-net and the regression discriminator.

Source: /work/shared/docs/atvgnet_davs.md §A4-A7 (Chen et al. 2019, ``lelechen63/ATVGnet``).

Two presets, the same code with other numbers:

* ``paper``: the original's numbers (128 px, ngf 64, ConvGRU 512, 9 residual blocks, dropout 0.5;
  discriminator ndf 64; AT-net conv channels 64-128-256-256-512, Linear 2048/256, LSTM 3 x 256).
* ``small``: a VG-net that trains meaningfully on a 2-core CPU: 64 px, ngf 32, ConvGRU 256 (the
  paper's 8 ngf), 4 residual blocks, discriminator ndf 32 / 256 / LSTM 128; chosen from
  ``scripts/bench_atvgnet.py`` (numbers in its docstring). AT-net
  keeps the paper's numbers (its input, 28 x 12 MFCCs, does not depend on the image size; it
  costs ~0.3 GMAC per frame).

Derived sizes: the VG-net bottleneck is ``image_size // 16`` pixels square (8 for 128 px); the
landmark embedding (``Linear 136 -> s*s``, reshaped to ``s x s x 1``) has ``s*s`` units (64 in
the paper). ``image_size`` must be a multiple of 16 and ``ngf`` even (the last decoder stage has
``ngf // 2`` channels).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

GRU_MODES = ("time", "original")
"""``time``: the ConvGRU recurs over the frames of a clip from a zero state (our default).
``original``: one zero-state GRU step per frame (what the released code computes at batch 1,
see :class:`tf_talkface.models.vgnet.ConvGRU`)."""


@dataclass(frozen=True)
class ATVGConfig:
    """Sizes of the three ATVGnet networks (fields in the order of the networks).

    Attributes:
        image_size: square frame size in pixels (128 in the paper); a multiple of 16.
        ngf: VG-net base channels (64): encoder ngf, 2ngf, 4ngf, 8ngf; decoder back to ngf // 2.
        gru_channels: ConvGRU hidden channels = residual-block width (512).
        n_res_blocks: residual blocks after the ConvGRU (9).
        dropout: dropout inside each residual block (0.5; active in training only).
        gru_mode: ``"time"`` or ``"original"`` (see :data:`GRU_MODES`).
        gru_kernel, gru_dilation: ConvGRU kernel (3) and dilation (2; "same" zero padding).
        ndf: discriminator base channels (64): 3 -> ndf -> 2ndf -> 4ndf -> 8ndf, stride 2 each.
        d_fc: discriminator frame feature and example-landmark feature width (512).
        d_lstm_units, d_lstm_layers: discriminator LSTM (256, 3).
        at_channels: AT-net audio conv channels (64, 128, 256, 256, 512); max-pools after the
            2nd and the 5th.
        at_fc: AT-net audio Linear widths after the flatten (2048, 256).
        at_example: AT-net example-PCA branch widths (256, 512).
        lstm_units, lstm_layers: AT-net LSTM (256, 3).
        n_pca: PCA coefficients per frame (6).
        n_landmarks: flattened landmark size (136 = 68 x 2, ``x0, y0, x1, ...``, x5 units).
        mfcc_rows, mfcc_cols: MFCC window per frame (28 rows at 100 Hz = 7 video frames, 12
            coefficients).
        frames: clip length T in training (16; inference accepts any T).
        sync_bn: synchronise BatchNorm statistics over replicas (``None``: yes when the model
            is built under a ``tf.distribute`` strategy with more than one replica).
    """

    image_size: int = 128
    ngf: int = 64
    gru_channels: int = 512
    n_res_blocks: int = 9
    dropout: float = 0.5
    gru_mode: str = "time"
    gru_kernel: int = 3
    gru_dilation: int = 2
    ndf: int = 64
    d_fc: int = 512
    d_lstm_units: int = 256
    d_lstm_layers: int = 3
    at_channels: tuple[int, ...] = (64, 128, 256, 256, 512)
    at_fc: tuple[int, ...] = (2048, 256)
    at_example: tuple[int, ...] = (256, 512)
    lstm_units: int = 256
    lstm_layers: int = 3
    n_pca: int = 6
    n_landmarks: int = 136
    mfcc_rows: int = 28
    mfcc_cols: int = 12
    frames: int = 16
    sync_bn: bool | None = None

    def __post_init__(self) -> None:
        for f in ("at_channels", "at_fc", "at_example"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f"ATVGConfig.image_size {self.image_size}: a multiple of 16 (>= 16)")
        if self.ngf < 2 or self.ngf % 2:
            raise ValueError(f"ATVGConfig.ngf {self.ngf}: an even number >= 2")
        if self.gru_mode not in GRU_MODES:
            raise ValueError(f"ATVGConfig.gru_mode {self.gru_mode!r}: one of {GRU_MODES}")
        if len(self.at_channels) != 5 or len(self.at_fc) < 1 or len(self.at_example) < 1:
            raise ValueError("ATVGConfig: at_channels needs 5 values, at_fc and at_example >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ATVGConfig.dropout {self.dropout}: in [0, 1)")
        if self.n_res_blocks < 0 or min(self.lstm_layers, self.d_lstm_layers) < 1:
            raise ValueError("ATVGConfig: n_res_blocks >= 0, lstm_layers/d_lstm_layers >= 1")

    @property
    def bottleneck_size(self) -> int:
        """Side of the VG-net bottleneck / discriminator encoder output (image_size // 16)."""
        return self.image_size // 16

    @property
    def landmark_embed(self) -> int:
        """Units of the VG-net landmark embedding (bottleneck_size ** 2; 64 in the paper)."""
        return self.bottleneck_size ** 2

    @property
    def at_flatten(self) -> int:
        """AT-net audio features after the second max-pool, flattened (12288 in the paper)."""
        h = (self.mfcc_rows - 3) + 1  # MaxPool2d(3, stride (1, 2))
        w = (self.mfcc_cols - 3) // 2 + 1
        h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1  # MaxPool2d(3, stride 2)
        return h * w * self.at_channels[-1]

    def replace(self, **changes: Any) -> "ATVGConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ATVGConfig":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown keys or invalid values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"ATVGConfig: unknown keys {unknown}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> "ATVGConfig":
        """The named preset (``paper`` or ``small``) with optional field changes.

        Raises:
            ValueError: unknown preset name.
        """
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown ATVGnet preset {name!r}; choose one of "
                             f"{', '.join(sorted(PRESETS))}") from None
        return base.replace(**changes) if changes else base


PRESETS: dict[str, ATVGConfig] = {
    "paper": ATVGConfig(),
    # scripts/bench_atvgnet.py (2-core CPU, under load) on the 256-channel ConvGRU variant:
    # ~94 training frames/s (GAN step, B 2, T 16), ~350 generated fps; paper: ~9 and ~26
    # (float32). The ConvGRU is 192 channels and AT-net has half the channels and a 512-unit
    # audio layer so that every weight file stays under the 30 MB a committed file may take:
    # generator 5.7 M parameters (23 MB), AT-net 5.6 M (22 MB; the paper's 12288 x 2048 layer
    # alone is 25 M).
    "small": ATVGConfig(image_size=64, ngf=32, gru_channels=192, n_res_blocks=4, ndf=32,
                        d_fc=256, d_lstm_units=128,
                        at_channels=(32, 64, 128, 128, 256), at_fc=(512, 256)),
}
"""The presets by name."""


def as_config(config: "ATVGConfig | dict | str | None") -> ATVGConfig:
    """An :class:`ATVGConfig` from a config, its dict, a preset name, or ``None`` (``paper``)."""
    if config is None:
        return PRESETS["paper"]
    if isinstance(config, ATVGConfig):
        return config
    if isinstance(config, str):
        return ATVGConfig.preset(config)
    if isinstance(config, dict):
        return ATVGConfig.from_dict(config)
    raise TypeError(f"expected an ATVGConfig, a dict or a preset name, got {type(config).__name__}")
