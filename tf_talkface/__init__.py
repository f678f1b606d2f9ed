"""tf_talkface: speech-driven 68-point face landmarks in TensorFlow 2 / Keras 3.

Re-implements Eskimez et al. 2018 (LSTM on log-mel deltas) and Eskimez et al. 2020
(1D-CNN on the raw 8 kHz waveform, PCA landmark coefficients) with a TFRecord/tf.data
training path and SavedModel export. See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"
