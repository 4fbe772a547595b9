"""LeNet-5 1998 specifics: the C3 connection table, trainable subsampling, the RBF output."""

import numpy as np
import tensorflow as tf

from architectures.lenet import C3_TABLE, EuclideanRBF, PartialConv2D, Subsampling, digit_centres
from cnnbench.measure.params import count_params


def test_c3_table_is_the_papers():
    # Table I: 6 maps from 3 contiguous inputs, 6 from 4 contiguous, 3 from 4 discontinuous, 1 from all six.
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    assert sum(len(t) for t in C3_TABLE) == 60
    assert C3_TABLE[12] == (0, 1, 3, 4) and C3_TABLE[15] == (0, 1, 2, 3, 4, 5)


def test_partial_conv_equals_masked_dense_conv():
    layer = PartialConv2D()
    x = tf.random.stateless_normal((2, 14, 14, 6), seed=(1, 2))
    y = layer(x)
    assert count_params(tf.keras.Sequential([tf.keras.Input((14, 14, 6)), layer]))["total"] == 1_516
    dense = np.zeros((5, 5, 6, 16), np.float32)
    kernel = layer.kernel.numpy()
    k = 0
    for j, inputs in enumerate(C3_TABLE):
        for i in inputs:
            dense[:, :, i, j] = kernel[:, :, k]
            k += 1
    expected = tf.nn.conv2d(x, dense, 1, "VALID") + layer.bias
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_subsampling_has_two_parameters_per_map_and_sums_windows():
    layer = Subsampling()
    x = tf.ones((1, 4, 4, 3))
    y = layer(x).numpy()
    assert sum(int(np.prod(w.shape)) for w in layer.weights) == 6
    np.testing.assert_allclose(y, 1.7159 * np.tanh(2 / 3 * 4.0), rtol=1e-6)


def test_rbf_centres_are_fixed_distinct_bitmaps():
    centres = digit_centres()
    assert centres.shape == (10, 84) and set(np.unique(centres)) == {-1.0, 1.0}
    assert len({c.tobytes() for c in centres}) == 10
    layer = EuclideanRBF(centres)
    logits = layer(tf.constant(centres[3:4], tf.float32)).numpy()
    assert logits.argmax() == 3 and logits[0, 3] == 0.0
    assert not layer.trainable_weights
