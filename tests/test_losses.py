"""DropoutNet's losses against hand computations.

The examples put every user embedding at ``e1`` and give item ``j`` the unit vector
``[c_j, sqrt(1 - c_j^2), 0]``, so the cosine of any user with item ``j`` is just ``c_j``: the
expected values below are written out from those cosines by hand.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dropoutnet-keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from dropoutnet.model.losses import (
    distill_loss,
    item_log_frequency,
    negative_shifts,
    pairwise_loss,
    pointwise_loss,
    softmax_loss,
)


def _batch(cosines):
    """Users all ``e1``; item j with cosine ``cosines[j]`` to every user."""
    c = np.asarray(cosines, np.float64)
    users = np.tile([1.0, 0.0, 0.0], (len(c), 1))
    items = np.stack([c, np.sqrt(1 - c ** 2), np.zeros_like(c)], axis=1)
    return tf.constant(users, tf.float32), tf.constant(items, tf.float32)


def _ce(logits):
    """Cross-entropy to class 0."""
    return math.log(sum(math.exp(z) for z in logits)) - logits[0]


def _sm(cosines, labels, ids=None, logq=None, **kw):
    users, items = _batch(cosines)
    return float(softmax_loss(
        users, items, tf.constant(labels, tf.float32),
        None if ids is None else tf.constant(ids),
        None if logq is None else tf.constant(logq, tf.float32), **kw))


# --- pointwise and pairwise -----------------------------------------------------------------


def test_pointwise_loss_on_a_hand_example():
    # labels 1, 0; logits 2.6, -0.9 (e.g. cosines 0.5, -0.2 with scale 5 and bias 0.1)
    expected = (math.log(1 + math.exp(-2.6)) + math.log(1 + math.exp(-0.9))) / 2
    got = pointwise_loss(tf.constant([1.0, 0.0]), tf.constant([2.6, -0.9]))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_distill_loss_on_a_hand_example():
    # squared errors 0.25 and 1.0 on the known rows; the third row has no target
    got = distill_loss(tf.constant([1.0, 0.0, 5.0]), tf.constant([0.5, 1.0, 0.0]),
                       tf.constant([True, True, False]))
    assert float(got) == pytest.approx((0.25 + 1.0) / 2)
    assert float(distill_loss(tf.constant([1.0]), tf.constant([0.0]), tf.constant([False]))) == 0


def test_pairwise_loss_on_a_hand_example():
    # scaled scores z = 5 * cos: rows 0 and 2 clicked, rows 1 and 3 not -> 4 ordered pairs
    z = [2.5, -1.0, 0.5, 1.5]
    pairs = [(0, 1), (0, 3), (2, 1), (2, 3)]
    expected = np.mean([math.log(1 + math.exp(-(z[i] - z[j]))) for i, j in pairs])
    got = pairwise_loss(tf.constant([1.0, 0.0, 1.0, 0.0]), tf.constant(z))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # graded labels: every (i, j) with y_i > y_j counts, ties do not
    y = [2.0, 1.0, 0.0, 1.0]
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (3, 2)]
    expected = np.mean([math.log(1 + math.exp(-(z[i] - z[j]))) for i, j in pairs])
    assert float(pairwise_loss(tf.constant(y), tf.constant(z))) == pytest.approx(expected, rel=1e-5)
    # no pair (all clicked, all not clicked, empty batch) -> 0, not NaN
    assert float(pairwise_loss(tf.ones([3]), tf.constant([1.0, 2.0, 3.0]))) == 0.0
    assert float(pairwise_loss(tf.zeros([0]), tf.zeros([0]))) == 0.0


# --- softmax ----------------------------------------------------------------------------------


def test_softmax_plain_on_a_hand_example():
    # rows 0 and 2 clicked; negatives = every other row's item (N = all); scale 2, m 0, t 1
    c = [0.6, 0.5, 0.1]
    row0 = _ce([1.2, 1.0, 0.2])           # positive 0.6; negatives rows 1, 2
    row2 = _ce([0.2, 1.2, 1.0])           # positive 0.1; negatives rows 0, 1
    got = _sm(c, [1, 0, 1], ids=["a", "b", "c"], scale=2.0)
    assert got == pytest.approx((row0 + row2) / 2, rel=1e-5)
    # no clicked row -> 0
    assert _sm(c, [0, 0, 0], scale=2.0) == 0.0


def test_softmax_masks_the_positive_item_among_its_negatives():
    # rows 0 and 3 are both clicks on item "x": for row 0, row 3's item is its own positive
    c = [0.6, 0.3, 0.2, 0.6]
    labels, ids = [1, 1, 0, 1], ["x", "y", "z", "x"]
    row0 = _ce([3.0, 1.5, 1.0])           # scale 5; row 3 (item x) masked
    row1 = _ce([1.5, 1.0, 3.0, 3.0])      # item y: nothing to mask
    row3 = _ce([3.0, 1.5, 1.0])           # row 0 (item x) masked
    masked = (row0 + row1 + row3) / 3
    unmasked = (_ce([3.0, 1.5, 1.0, 3.0]) + row1 + _ce([3.0, 3.0, 1.5, 1.0])) / 3
    assert _sm(c, labels, ids=ids, scale=5.0) == pytest.approx(masked, rel=1e-5)
    assert _sm(c, labels, ids=None, scale=5.0) == pytest.approx(unmasked, rel=1e-5)
    assert unmasked - masked > 0.1       # the mask matters here
    # rolled negatives (N = 1, shift 1): row 3's one negative is row 0 = item x, masked away
    rolled = (_ce([3.0, 1.5]) + _ce([1.5, 1.0]) + _ce([3.0])) / 3
    got = _sm(c, labels, ids=ids, scale=5.0, shifts=tf.constant([1]))
    assert got == pytest.approx(rolled, rel=1e-5)


def test_softmax_support_vector_hard_negatives():
    # m 0.2, scale 2, t 1.5: a negative is hard when s_k > s+ - 0.2; hard -> 1.5 s_k + 0.5
    c = [0.6, 0.5, 0.1]
    # row 0: s+ 0.6, threshold 0.4: 0.5 hard -> 1.25, 0.1 easy -> 0.1
    row0 = _ce([2 * 0.4, 2 * 1.25, 2 * 0.1])
    # row 2: s+ 0.1, threshold -0.1: 0.6 and 0.5 both hard -> 1.4 and 1.25
    row2 = _ce([2 * -0.1, 2 * 1.4, 2 * 1.25])
    got = _sm(c, [1, 0, 1], ids=["a", "b", "c"], margin=0.2, scale=2.0, sv_coefficient=1.5)
    assert got == pytest.approx((row0 + row2) / 2, rel=1e-5)
    # t = 1 leaves negatives as they are: only the margin remains
    plain = (_ce([0.8, 1.0, 0.2]) + _ce([-0.2, 1.2, 1.0])) / 2
    assert _sm(c, [1, 0, 1], margin=0.2, scale=2.0) == pytest.approx(plain, rel=1e-5)
    assert got - plain > 0.1


def test_softmax_logq_correction():
    # q = 0.5, 0.25, 0.25: every logit (positive and negatives) minus log q of its item
    c, lq = [0.6, 0.5, 0.1], np.log([0.5, 0.25, 0.25])
    row0 = _ce([1.2 - lq[0], 1.0 - lq[1], 0.2 - lq[2]])
    row2 = _ce([0.2 - lq[2], 1.2 - lq[0], 1.0 - lq[1]])
    got = _sm(c, [1, 0, 1], ids=["a", "b", "c"], logq=lq, scale=2.0)
    assert got == pytest.approx((row0 + row2) / 2, rel=1e-5)


def test_softmax_item_bias_is_added_to_each_items_logit():
    # the item prior in the softmax's units: + bias of the column's item, positive included
    c, b = [0.6, 0.5, 0.1], [0.3, -0.2, 1.0]
    row0 = _ce([1.2 + b[0], 1.0 + b[1], 0.2 + b[2]])
    row2 = _ce([0.2 + b[2], 1.2 + b[0], 1.0 + b[1]])
    got = _sm(c, [1, 0, 1], ids=["a", "b", "c"], scale=2.0,
              item_bias=tf.constant(b, tf.float32))
    assert got == pytest.approx((row0 + row2) / 2, rel=1e-5)
    assert abs(got - _sm(c, [1, 0, 1], ids=["a", "b", "c"], scale=2.0)) > 0.05
    # the frequency estimate: share of training rows holding the item
    np.testing.assert_allclose(item_log_frequency(np.array(["a", "a", "b", "c"])),
                               np.log([0.5, 0.5, 0.25, 0.25]), rtol=1e-6)


def test_negative_shifts():
    assert negative_shifts(tf.constant(5), None).numpy().tolist() == [1, 2, 3, 4]
    drawn = negative_shifts(tf.constant(10), 4).numpy()
    assert len(drawn) == 4 == len(set(drawn)) and all(1 <= s < 10 for s in drawn)
    # a last batch smaller than N: every other row once
    assert sorted(negative_shifts(tf.constant(3), 4).numpy().tolist()) == [1, 2]
    # a one-row batch has no negative; its loss is 0
    assert _sm([0.5], [1], num_negatives=4) == 0.0


def test_softmax_gradient_is_finite_with_masked_negatives():
    users, items = _batch([0.6, 0.3, 0.2, 0.6])
    with tf.GradientTape() as tape:
        tape.watch(items)
        loss = softmax_loss(users, items, tf.constant([1.0, 1, 0, 1]),
                            tf.constant(["x", "y", "z", "x"]), None, scale=5.0, margin=0.1,
                            sv_coefficient=1.2)
    assert np.all(np.isfinite(tape.gradient(loss, items).numpy()))


def test_softmax_on_a_one_row_batch_is_zero_not_an_error():
    # the last batch of an epoch can hold a single row: no negatives at all
    user = tf.constant([[0.6, 0.8]])
    item = tf.constant([[1.0, 0.0]])
    for ids in (None, tf.constant(["a"])):
        loss = softmax_loss(user, item, tf.constant([1.0]), ids, scale=10.0)
        assert float(loss) == 0.0
