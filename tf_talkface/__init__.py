"""tf_talkface: speech-driven 68-point face landmarks in TensorFlow 2 / Keras 3.

Re-implements Eskimez et al. 2018 (LSTM on log-mel deltas) and Eskimez et al. 2020
(1D-CNN on the raw 8 kHz waveform, PCA landmark coefficients) with a TFRecord/tf.data
training path and SavedModel export. See README.md and docs/architecture.md.

Public API::

    import tf_talkface

    model = tf_talkface.load_model()             # the bundled default model
    model = tf_talkface.load_model("saved_models/lstm_grid_s1")   # any exported model
    landmarks = model.predict(waveform)          # float32 (frames, 68, 2) at 25 fps

``tf_talkface.load_model`` is :func:`tf_talkface.saved_model.load_model`, imported on first use
so that ``import tf_talkface`` stays cheap (no NumPy, no TensorFlow).
"""

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from tf_talkface.saved_model import load_model  # lazy: keeps `import tf_talkface` cheap

        globals()["load_model"] = load_model
        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
