"""The training optimizer: Adam's update, exactly, for dense and for embedding (sparse)
gradients, and AdamW's decoupled weight decay."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from dropoutnet.model.optimizer import Adam

LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-7


def textbook_adam(w: np.ndarray, grads: list[np.ndarray], decay: float = 0.0) -> np.ndarray:
    """Adam (Kingma & Ba, with Keras's epsilon outside the root), AdamW's decay first."""
    m, v, w = np.zeros_like(w), np.zeros_like(w), w.astype(np.float64)
    for t, g in enumerate(grads, start=1):
        w = w - w * decay * LR
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        w = w - LR * np.sqrt(1 - B2 ** t) / (1 - B1 ** t) * m / (np.sqrt(v) + EPS)
    return w


def test_a_dense_gradient_gets_adams_update():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    var = keras.Variable(start)
    opt = Adam(LR)
    for g in grads:
        opt.apply([tf.constant(g)], [var])
    np.testing.assert_allclose(var.numpy(), textbook_adam(start, grads), rtol=1e-5, atol=1e-6)


def test_an_embedding_row_looked_up_many_times_gets_adams_update():
    """Row 0 is looked up three times in the batch: its gradient is the sum of the three
    slices, and Adam's first step moves it by at most the learning rate.  (Keras 3.15's own
    Adam squares the slices before summing them and moves it by up to √3 times that.)"""
    table = keras.Variable(np.zeros((4, 2), np.float32))
    ids = tf.constant([0, 0, 0, 2])
    upstream = tf.constant([[1.0, -0.5], [2.0, -0.5], [3.0, 0.25], [1.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table.value, ids) * upstream)
    gradient = tape.gradient(loss, table.value)
    assert isinstance(gradient, tf.IndexedSlices)  # what an embedding lookup gives
    Adam(LR).apply([gradient], [table])
    dense = tf.convert_to_tensor(gradient).numpy()
    np.testing.assert_allclose(table.numpy(), textbook_adam(np.zeros((4, 2)), [dense]),
                               rtol=1e-5, atol=1e-7)
    assert np.abs(table.numpy()).max() <= LR * (1 + 1e-5)
    assert not table.numpy()[[1, 3]].any()  # rows not looked up do not move


def test_weight_decay_is_adamw():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5,)).astype(np.float32)
    grads = [rng.normal(size=(5,)).astype(np.float32) for _ in range(2)]
    ours, keras_adamw = keras.Variable(start), keras.Variable(start)
    opt, ref = Adam(LR, weight_decay=0.1), keras.optimizers.AdamW(LR, weight_decay=0.1)
    for g in grads:
        opt.apply([tf.constant(g)], [ours])
        ref.apply([tf.constant(g)], [keras_adamw])
    np.testing.assert_allclose(ours.numpy(), keras_adamw.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.numpy(), textbook_adam(start, grads, decay=0.1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_the_slots_keep_keras_names(amsgrad):
    """Checkpoints key the optimizer's slots by name: a checkpoint written with Keras's Adam
    warm-starts this one."""
    var = keras.Variable(np.zeros(3, np.float32), name="w")
    ours, theirs = Adam(LR, amsgrad=amsgrad), keras.optimizers.Adam(LR, amsgrad=amsgrad)
    ours.build([var])
    theirs.build([var])
    def names(optimizer):
        return [v.path.removeprefix(optimizer.name + "/") for v in optimizer.variables]

    assert names(ours) == names(theirs) and len(names(ours)) == (5 if amsgrad else 4)
