"""DropoutNet's losses, as pure functions of the towers' outputs.

* :func:`pointwise_loss`: sigmoid cross-entropy of the label against ``scale * cosine + bias``.
  EasyRec feeds the raw cosine to the sigmoid, which confines probabilities to about
  [0.27, 0.73]; a learned scale (initialised around 5) and bias remove that ceiling.
* :func:`in_batch_softmax_loss`: for the positive rows (label 1) of a batch, the other positive
  rows' items are the negatives: ``logits[i, j] = cos(user_i, item_j) / temperature``, target
  ``j = i``.  A "negative" ``j != i`` whose item id equals row ``i``'s item is the positive
  itself appearing twice; its logit is set to ``-inf`` (EasyRec does not mask it).  With fewer
  than two positives there is nothing to contrast and the term is 0.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["pointwise_loss", "softmax_logits", "in_batch_softmax_loss", "positive_count"]


def pointwise_loss(labels: tf.Tensor, cosine: tf.Tensor, scale: tf.Tensor,
                   bias: tf.Tensor) -> tf.Tensor:
    """Mean sigmoid cross-entropy of ``labels`` (0/1, [n]) against ``scale * cosine + bias``."""
    logits = scale * cosine + bias
    labels = tf.cast(labels, logits.dtype)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def softmax_logits(user_embedding: tf.Tensor, item_embedding: tf.Tensor,
                   item_ids: tf.Tensor | None, temperature: float) -> tf.Tensor:
    """``[p, p]`` logits among ``p`` positive pairs; other rows' copies of row i's item -> -inf.

    ``user_embedding`` and ``item_embedding`` are the positive rows only (unit vectors).
    ``item_ids`` ([p] strings or ints, or ``None`` for no duplicate masking).
    """
    logits = tf.matmul(user_embedding, item_embedding, transpose_b=True) / temperature
    if item_ids is None:
        return logits
    same_item = tf.equal(item_ids[:, None], item_ids[None, :])
    p = tf.shape(logits)[0]
    off_diagonal = tf.logical_not(tf.eye(p, dtype=tf.bool))
    masked = tf.logical_and(same_item, off_diagonal)
    return tf.where(masked, tf.constant(float("-inf"), logits.dtype), logits)


def positive_count(labels: tf.Tensor) -> tf.Tensor:
    """Number of rows with label 1 (int32 scalar)."""
    return tf.reduce_sum(tf.cast(tf.cast(labels, tf.float32) > 0.5, tf.int32))


def in_batch_softmax_loss(user_embedding: tf.Tensor, item_embedding: tf.Tensor,
                          labels: tf.Tensor, item_ids: tf.Tensor | None,
                          temperature: float) -> tf.Tensor:
    """Mean cross-entropy of each positive row against the batch's other positive items.

    All inputs cover the whole batch (``[n, d]``, ``[n, d]``, ``[n]``, ``[n]``); the positive
    rows are selected here.  Returns 0 when the batch has fewer than two positives.
    """
    positive = tf.cast(labels, tf.float32) > 0.5
    users = tf.boolean_mask(user_embedding, positive)
    items = tf.boolean_mask(item_embedding, positive)
    ids = None if item_ids is None else tf.boolean_mask(item_ids, positive)
    logits = softmax_logits(users, items, ids, temperature)
    p = tf.shape(logits)[0]
    # cross-entropy to the diagonal, written out so that an empty batch (p = 0) is no error
    per_row = tf.reduce_logsumexp(logits, axis=1) - tf.linalg.diag_part(logits)
    loss = tf.math.divide_no_nan(tf.reduce_sum(per_row), tf.cast(p, per_row.dtype))
    return tf.where(p >= 2, loss, tf.zeros_like(loss))
