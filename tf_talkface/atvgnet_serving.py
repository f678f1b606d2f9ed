"""ATVGnet as one SavedModel: 16-kHz speech + an aligned example face -> video frames.

Chen et al., CVPR 2019 (``shared/docs/atvgnet_davs.md`` A8, the demo pipeline), with everything
after the face alignment inside the graph so TF Serving runs it as one call:

1. MFCC of the waveform padded by 1920 zeros on both sides, and the 28x12 window of every video
   frame (:mod:`tf_talkface.audio.mfcc`, the TF twin of ``python_speech_features``);
2. the example landmarks projected on the dataset's 6-component PCA, AT-net over the whole
   utterance -> PCA codes per frame;
3. landmarks per frame = the example's landmarks + the PCA reconstruction of the *change* of
   the codes from the example's (``example + (p_t - p_example) U``). **Our change:** the
   original reconstructs ``p_t U + mean`` from a constant example shape (its ``normLmarks``
   removes identity, A3.6); our landmarks keep the speaker's shape, so we move the example's own
   shape by the predicted motion (the 6 components fitted on one speaker cannot describe a new
   face's shape). The demo's hand-set amplification of components 2-6 (ω, A8.3) is the card's
   ``pca_gain`` (1 = none, our default);
4. VG-net (inference mode: BatchNorm running statistics, no dropout) in chunks of
   ``chunk_frames`` frames with its ConvGRU state carried across chunks (``time`` mode), so long
   speech runs in bounded memory.

Signature ``serving_default`` (one clip; batch 1 by design, as the demo):

* ``waveform`` float32 (samples,) mono in [-1, 1] at 16 kHz (at least 640 samples);
* ``example_image`` uint8 (H, W, 3) RGB: the face crop aligned by
  :func:`tf_talkface.face.align.crop_transforms` (128 px; any size is resized to the network's);
* ``example_landmarks`` float32 (136,): that crop's landmarks, normalised x5
  (:func:`tf_talkface.face.align.crop_to_normalised`).

Outputs: ``frames`` uint8 (T, S, S, 3) at the network's size S, ``landmarks`` float32 (T, 136)
(normalised x5), ``pca`` (T, 6), ``attention`` float32 (T, S, S, 1) (α: where the colour map
replaces the example), ``color`` uint8 (T, S, S, 3) (the colour/"motion" map), with
``T = ceil(samples / 640)`` frames at 25 fps.

The checkpoint this exports from (a folder): ``atvgnet.json`` (the network config, the PCA basis,
the crop normalisation, the training record), ``atnet.weights.h5``, ``generator.weights.h5``
(and ``discriminator.weights.h5`` to continue training; not exported).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface.card import CARD_FILE, CARD_FORMAT, ModelError

CHECKPOINT_FILE = "atvgnet.json"
HOP = 640
"""Waveform samples per video frame (16 kHz / 25 fps)."""
SAMPLE_RATE = 16000


class ATVGCheckpoint:
    """A trained AT-net + VG-net pair with what inference needs (see the module docstring).

    Attributes:
        folder: the checkpoint folder. record: ``atvgnet.json``. network: ``ATVGConfig``.
        pca_mean float32 (136,), pca_components float32 (6, 136).
    """

    def __init__(self, folder: str | os.PathLike):
        from tf_talkface.models.atvgnet_config import ATVGConfig

        self.folder = Path(folder)
        f = self.folder / CHECKPOINT_FILE
        try:
            self.record = json.loads(f.read_text())
            self.network = ATVGConfig.from_dict(self.record["network"])
            self.pca_mean = np.asarray(self.record["basis"]["mean"], np.float32).reshape(136)
            self.pca_components = np.asarray(self.record["basis"]["components"], np.float32)
        except FileNotFoundError:
            raise ModelError(f"{self.folder}: not an ATVGnet checkpoint (no {CHECKPOINT_FILE})") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{f}: unreadable ATVGnet checkpoint record ({e})") from None
        for w in ("atnet.weights.h5", "generator.weights.h5"):
            if not (self.folder / w).is_file():
                raise ModelError(f"{self.folder}: missing {w}")

    def build(self):
        """``(atnet, vgnet)`` Keras models with the checkpoint's weights."""
        from tf_talkface.models.atnet import build_atnet
        from tf_talkface.models.vgnet import VGNet

        atnet = build_atnet(self.network)
        atnet.load_weights(self.folder / "atnet.weights.h5")
        vgnet = VGNet(self.network)
        vgnet.load_weights(self.folder / "generator.weights.h5")
        return atnet, vgnet


def write_checkpoint(folder: str | os.PathLike, network: dict, basis: dict, normalisation: dict,
                     atnet_weights: str | os.PathLike, generator_weights: str | os.PathLike,
                     discriminator_weights: str | os.PathLike | None = None,
                     training: dict | None = None) -> Path:
    """Assemble a checkpoint folder from the weights of two runs (``train_atvgnet``'s ``best/``
    files) and the dataset's PCA basis (``basis.json``: ``mean``, ``components``) and crop
    normalisation (the manifest's ``normalisation``). Written beside, then renamed.

    Raises:
        ModelError: the basis does not have 136-dim mean and (k, 136) components.
    """
    import shutil

    mean = np.asarray(basis["mean"], np.float32).reshape(-1)
    comps = np.asarray(basis["components"], np.float32)
    if mean.shape != (136,) or comps.ndim != 2 or comps.shape[1] != 136:
        raise ModelError(f"PCA basis must be mean (136,) and components (k, 136); got "
                         f"{mean.shape} and {comps.shape}")
    out = Path(folder)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(atnet_weights, tmp / "atnet.weights.h5")
    shutil.copyfile(generator_weights, tmp / "generator.weights.h5")
    if discriminator_weights:
        shutil.copyfile(discriminator_weights, tmp / "discriminator.weights.h5")
    rec = {"format": 1, "model": "atvgnet", "network": network,
           "basis": {"mean": mean.tolist(), "components": comps.tolist()},
           "normalisation": normalisation, "training": training or {}}
    (tmp / CHECKPOINT_FILE).write_text(json.dumps(rec, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def serving_module(atnet, vgnet, pca_mean: np.ndarray, pca_components: np.ndarray,
                   chunk_frames: int = 25, pca_gain: list[float] | None = None):
    """A ``tf.Module`` with the ``generate`` function of the module docstring (traced on first
    use). ``pca_gain``: per-component factors on the predicted motion (``None`` = 1)."""
    import tensorflow as tf

    from tf_talkface.audio.mfcc import mfcc_padded_tf, mfcc_windows_tf

    cfg = vgnet.config
    size, k = cfg.image_size, int(pca_components.shape[0])
    gain = np.ones(k, np.float32) if pca_gain is None else np.asarray(pca_gain, np.float32)
    if gain.shape != (k,):
        raise ModelError(f"pca_gain needs {k} values, got {gain.shape}")

    class ATVGnetModule(tf.Module):
        def __init__(self):
            super().__init__(name="atvgnet")
            self.atnet, self.vgnet = atnet, vgnet
            self.mean = tf.constant(pca_mean, tf.float32)
            self.components = tf.constant(pca_components, tf.float32)
            self.gain = tf.constant(gain, tf.float32)

        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.float32, name="waveform"),
            tf.TensorSpec([None, None, 3], tf.uint8, name="example_image"),
            tf.TensorSpec([136], tf.float32, name="example_landmarks")])
        def generate(self, waveform, example_image, example_landmarks):
            tf.debugging.assert_all_finite(waveform, "waveform has NaN/Inf samples")
            tf.debugging.assert_all_finite(example_landmarks, "example_landmarks has NaN/Inf")
            n = tf.maximum(1, (tf.shape(waveform)[0] + HOP - 1) // HOP)
            wav = tf.pad(waveform, [[0, n * HOP - tf.shape(waveform)[0]]])
            windows = mfcc_windows_tf(mfcc_padded_tf(wav), n)                       # (T, 28, 12)
            ex_pca = tf.linalg.matvec(self.components, example_landmarks - self.mean)  # (k,)
            pca = self.atnet({"example_pca": ex_pca[None], "mfcc": windows[None]},
                             training=False)[0]                                     # (T, k)
            pca = tf.cast(pca, tf.float32)
            motion = tf.matmul((pca - ex_pca[None]) * self.gain[None], self.components)
            landmarks = example_landmarks[None] + motion                            # (T, 136)
            img = tf.image.resize(tf.cast(example_image, tf.float32)[None], (size, size),
                                  method="area", antialias=True)
            img = img / 127.5 - 1.0
            ex_lmk = example_landmarks[None]
            c = chunk_frames
            n_chunks = (n + c - 1) // c
            s = cfg.bottleneck_size
            state = tf.zeros((1, s, s, cfg.gru_channels), tf.float32)
            ta = {key: tf.TensorArray(tf.float32, size=n_chunks, infer_shape=False)
                  for key in ("frames", "attention", "color")}

            def body(i, state, fr, at, co):
                lm = landmarks[i * c:tf.minimum(n, (i + 1) * c)][None]
                out = self.vgnet({"example_image": img, "example_landmarks": ex_lmk,
                                  "landmarks": lm, "gru_state": state},
                                 training=False, return_state=True)
                return (i + 1, tf.cast(out["gru_state"], tf.float32),
                        fr.write(i, out["frames"][0]), at.write(i, out["attention"][0]),
                        co.write(i, out["color"][0]))

            _, _, fr, at, co = tf.while_loop(
                lambda i, *_: i < n_chunks, body,
                (tf.constant(0), state, ta["frames"], ta["attention"], ta["color"]),
                shape_invariants=(tf.TensorShape([]), tf.TensorShape([1, s, s, cfg.gru_channels]),
                                  tf.TensorShape(None), tf.TensorShape(None), tf.TensorShape(None)))

            def to_uint8(x):
                return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0, 255), tf.uint8)

            frames = tf.ensure_shape(fr.concat(), [None, size, size, 3])
            return {"frames": to_uint8(frames), "landmarks": landmarks, "pca": pca,
                    "attention": tf.ensure_shape(at.concat(), [None, size, size, 1]),
                    "color": to_uint8(tf.ensure_shape(co.concat(), [None, size, size, 3]))}

    return ATVGnetModule()


def neutral_face() -> list:
    """The crop template as normalised x5 (68, 2) points (the card's ``neutral_face``)."""
    from tf_talkface.face.align import ATVGNET_TEMPLATE, crop_to_normalised

    return crop_to_normalised(ATVGNET_TEMPLATE).reshape(68, 2).astype(float).round(6).tolist()


def export_atvgnet(checkpoint: str | os.PathLike, out: str | os.PathLike, name: str | None = None,
                   chunk_frames: int = 25, pca_gain: list[float] | None = None) -> Path:
    """Export an ATVGnet checkpoint folder to a SavedModel version folder with its model card.

    ``out`` is ``saved_models/NAME/VERSION`` (NAME and VERSION from the path unless ``name``).
    Written beside and renamed, so a failed export leaves nothing.

    Raises:
        ModelError: not a checkpoint, missing weights, non-finite weights.
    """
    import shutil

    import tensorflow as tf

    ck = ATVGCheckpoint(checkpoint)
    atnet, vgnet = ck.build()
    for m in (atnet, vgnet):
        for v in m.weights:
            if not np.all(np.isfinite(np.asarray(v))):
                raise ModelError(f"{checkpoint}: non-finite weights in {v.path}; not exported")
    module = serving_module(atnet, vgnet, ck.pca_mean, ck.pca_components, chunk_frames, pca_gain)
    out = Path(out)
    version = int(out.name) if out.name.isdigit() else 1
    model_name = name or (out.parent.name if out.name.isdigit() else out.name)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.generate})
    net = ck.network
    card = {"format": CARD_FORMAT, "name": model_name, "version": version, "model": "atvgnet",
            "recipe": "atvgnet", "sample_rate": SAMPLE_RATE, "fps": 25, "min_samples": HOP,
            "image_size": net.image_size, "network": net.to_dict(),
            "preset": ck.record.get("training", {}).get("preset"),
            "pca_gain": None if pca_gain is None else list(map(float, pca_gain)),
            "chunk_frames": chunk_frames, "normalisation": ck.record.get("normalisation", {}),
            "neutral_face": neutral_face(), "training": ck.record.get("training", {}),
            "signature": {"inputs": {"waveform": "float32 (samples,) 16 kHz mono",
                                     "example_image": "uint8 (H, W, 3) aligned face crop",
                                     "example_landmarks": "float32 (136,) normalised x5"},
                          "outputs": {"frames": "uint8 (T, S, S, 3)",
                                      "landmarks": "float32 (T, 136) normalised x5",
                                      "pca": "float32 (T, 6)",
                                      "attention": "float32 (T, S, S, 1)",
                                      "color": "uint8 (T, S, S, 3)"}},
            "source": "Chen et al., CVPR 2019 (ATVGnet); tf_talkface re-implementation"}
    (tmp / CARD_FILE).write_text(json.dumps(card, indent=1))
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


class ATVGnetModel:
    """An exported ATVGnet SavedModel loaded for inference.

    Attributes:
        path: the version folder. card: the model card. image_size: the network's frame size.
    """

    def __init__(self, path: str | os.PathLike, card: dict, module: Any):
        self.path, self.card, self.module = Path(path), card, module
        self.image_size = int(card["image_size"])
        self._fn = module.signatures["serving_default"]

    @property
    def name(self) -> str:
        return f"{self.card['name']}/{self.card['version']}"

    def generate(self, waveform: np.ndarray, example_image: np.ndarray,
                 example_landmarks: np.ndarray) -> dict[str, np.ndarray]:
        """Run the signature (module docstring). ``waveform`` float (samples,) at 16 kHz,
        ``example_image`` uint8 (H, W, 3), ``example_landmarks`` float (136,).

        Raises:
            ModelError: empty or non-finite waveform.
        """
        import tensorflow as tf

        w = np.asarray(waveform, np.float32).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)):
            raise ModelError("waveform is empty or has NaN/Inf samples")
        out = self._fn(waveform=tf.constant(w), example_image=tf.constant(example_image, tf.uint8),
                       example_landmarks=tf.constant(np.asarray(example_landmarks, np.float32)))
        return {k: v.numpy() for k, v in out.items()}


def load_atvgnet(path: str | os.PathLike) -> ATVGnetModel:
    """Load an exported ATVGnet version folder (or a model folder: its newest version).

    Raises:
        ModelError: not an ATVGnet SavedModel.
    """
    import tensorflow as tf

    from tf_talkface.card import read_card, resolve_model_dir

    d = resolve_model_dir(path)
    card = read_card(d)
    if card.get("model") != "atvgnet":
        raise ModelError(f"{d}: not an ATVGnet model (model card says {card.get('model')!r})")
    return ATVGnetModel(d, card, tf.saved_model.load(str(d)))
