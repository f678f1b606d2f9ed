"""Rebuild ``tf_talkface.face.align.ATVGNET_TEMPLATE`` (ATVGnet's 128-px crop template).

The template is the Eskimez et al. 2018 mean face (``<shared data>/reference/eskimez2018/
mean_shape.npy``) placed by ``place_template(mean, 128, eye_y=46, mouth_y=95)``: eyes level,
eye midpoint at x = 64, eye centres at y = 46, mouth centre at y = 95; rounded to 1/100 px.
Prints the Python source of the constant; ``--check`` compares it with the package's constant
(exit 1 on a difference).

    python scripts/make_atvgnet_template.py [--check]
"""
from __future__ import annotations

import sys

import numpy as np

from tf_talkface.face.align import (ATVGNET_EYE_Y, ATVGNET_MOUTH_Y, ATVGNET_SIZE,
                                    ATVGNET_TEMPLATE, place_template)
from tf_talkface.resources import reference_file


def build() -> np.ndarray:
    ref = reference_file("eskimez2018", "mean_shape.npy")
    if ref is None:
        sys.exit("the shared reference data (reference/eskimez2018/mean_shape.npy) is not here")
    return np.round(place_template(np.load(ref), ATVGNET_SIZE, ATVGNET_EYE_Y, ATVGNET_MOUTH_Y), 2)


def source(t: np.ndarray) -> str:
    rows = [", ".join(f"{x:.2f}, {y:.2f}" for x, y in t[i:i + 4]) for i in range(0, 68, 4)]
    return "_ATVGNET_TEMPLATE_XY = (\n" + "".join(f"    {r},\n" for r in rows) + ")"


if __name__ == "__main__":
    t = build()
    if "--check" in sys.argv[1:]:
        diff = float(np.abs(t - ATVGNET_TEMPLATE).max())
        print(f"max difference to the package constant: {diff:.3g} px")
        sys.exit(0 if diff < 1e-9 else 1)
    print(source(t))
