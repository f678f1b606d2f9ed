"""StackedLSTMInference (the fast inference twin of the 2018 LSTM stack): equal to the Keras
model on real speech features, in batches, with states carried across chunks, with the
original Keras 2 gates, and with empty inputs."""
import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.audio.features import add_context, logmel_delta_features
from tf_talkface.config import LogMelConfig
from tf_talkface.models.lstm import StackedLSTMInference, build_lstm

TOL = 1e-5


@pytest.fixture(scope="module")
def trained(checkpoint):
    from tf_talkface.export import load_trained

    return load_trained(checkpoint("lstm_d1_c3_b16"))


@pytest.fixture(scope="module")
def features(data_dir, trained):
    from tf_talkface.audio.io import load_audio

    y = load_audio(data_dir / "speech" / "test1.flac", 44100)
    return add_context(logmel_delta_features(y, LogMelConfig()), trained.context).astype(np.float32)


def test_equals_keras_on_real_speech_batched(trained, features):
    stack = StackedLSTMInference(trained.net)
    assert stack.input_dim == features.shape[1] and stack.units == [256, 256, 256, 136]
    n = len(features)
    # a batch of two clips of different lengths, right-padded (the LSTM is causal)
    x = np.zeros((2, n, features.shape[1]), np.float32)
    x[0], x[1, :n // 2] = features, features[:n // 2]
    ref = np.asarray(trained.net(x, training=False))
    out = tf.function(stack)(tf.constant(x)).numpy()
    assert out.shape == ref.shape == (2, n, 136)
    assert np.abs(out - ref).max() < TOL
    assert np.abs(out[1, :n // 2] - ref[0, :n // 2]).max() < TOL
    assert out.std() > 1e-3  # real, varying predictions


def test_carried_states_equal_one_pass(trained, features):
    stack = StackedLSTMInference(trained.net)
    x = tf.constant(features[None])
    whole, end_states = stack(x, return_states=True)
    cut = 37
    first, states = stack(x[:, :cut], return_states=True)
    second, states2 = stack(x[:, cut:], states, return_states=True)
    joined = np.concatenate([first.numpy(), second.numpy()], axis=1)
    assert np.abs(joined - whole.numpy()).max() < TOL
    for a, b in zip(states2, end_states):
        assert np.abs(a.numpy() - b.numpy()).max() < TOL
    # final h of the last layer is the last output frame
    assert np.abs(end_states[-2].numpy()[0] - whole.numpy()[0, -1]).max() < 1e-7


def test_empty_sequence_keeps_states(trained):
    stack = StackedLSTMInference(trained.net)
    states = [tf.random.normal([1, u]) for u in stack.units for _ in (0, 1)]
    y, out = stack(tf.zeros([1, 0, stack.input_dim]), states, return_states=True)
    assert y.shape == (1, 0, 136)
    for a, b in zip(out, states):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras2_gates_and_other_sizes():
    net = build_lstm(input_dim=20, units=16, output_dim=6, num_layers=2,
                     recurrent_activation="keras2_hard_sigmoid")
    x = np.random.default_rng(0).normal(size=(3, 11, 20)).astype(np.float32)
    ref = np.asarray(net(x, training=False))
    out = StackedLSTMInference(net)(x).numpy()
    assert np.abs(out - ref).max() < TOL


def test_rejects_models_without_forward_lstm_stack():
    import keras

    dense = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="no LSTM layers"):
        StackedLSTMInference(dense)
    last = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(3)])
    with pytest.raises(ValueError, match="return_sequences"):
        StackedLSTMInference(last)
