"""DropoutNet's losses, as pure functions of the towers' outputs.

Each is enabled and weighted by ``model.losses`` in the config (see
:class:`dropoutnet.config.LossConfig`); the model sums the weighted terms.

* :func:`pointwise_loss`: sigmoid cross-entropy of the label against the model's logit
  ``scale * cosine + prior + bias``.  EasyRec feeds the raw cosine to the sigmoid, which
  confines probabilities to about [0.27, 0.73]; a learned scale (initialised around 5) and
  bias remove that ceiling.
* :func:`pairwise_loss`: RankNet over the batch's pairs ``(i, j)`` with ``y_i > y_j``:
  mean ``log(1 + exp(-(z_i - z_j)))`` on the ranking scores ``z = scale * cosine + prior``.
* :func:`softmax_loss`: for each clicked row, a softmax of its item against ``N`` in-batch
  negatives (other rows' items: all of them, or ``N`` random shifts of the batch as EasyRec
  rolls it) with EasyRec's support-vector hard-negative weighting (margin ``m``, scale ``gamma``,
  coefficient ``t``).  Two faults of EasyRec's version are fixed: a negative holding the
  positive's own item (the same item clicked in two rows of the batch) is masked out, and an
  optional logQ correction subtracts ``log q(item)`` (:func:`item_log_frequency`) from every
  logit, so popular items, drawn as negatives more often, are not pushed down for it.
  With an item prior, each column also gets its item's prior (in the softmax's units), so
  the softmax ranks by the same score as retrieval.
* :func:`distill_loss`: the DropoutNet paper's objective: squared error between an affine map
  of the score and a preference model's ``U_u . V_i``, on the rows where both are known.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["distill_loss", "item_log_frequency", "masked_mean", "negative_shifts",
           "pairwise_loss", "pointwise_loss", "softmax_loss"]


def pointwise_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean sigmoid cross-entropy of ``labels`` (0/1, [n]) against ``logits`` ([n])."""
    labels = tf.cast(labels, logits.dtype)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def distill_loss(prediction: tf.Tensor, target: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
    """Mean squared error of ``prediction`` against ``target`` over the ``known`` rows ([n]).

    The paper's objective: the towers reproduce a preference model's score ``U_u . V_i``.
    ``known`` is 1 where both preference vectors exist (a row without them has no target);
    0 when no row has one.
    """
    return masked_mean(tf.square(prediction - tf.cast(target, prediction.dtype)), known)


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``values`` ([n]) over the rows where ``mask`` is true or 1; 0 over none."""
    mask = tf.cast(mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(mask * values), tf.reduce_sum(mask))


def pairwise_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """RankNet over in-batch pairs: mean ``log(1 + exp(-(z_i - z_j)))`` over ``y_i > y_j``.

    ``logits`` are the ranking scores ``z = scale * cosine + prior`` ([n]); pairs cross users,
    as in EasyRec.  Returns 0 when the batch has no such pair.
    """
    logits = tf.reshape(logits, [-1])
    labels = tf.reshape(tf.cast(labels, logits.dtype), [-1])
    pairs = tf.cast(labels[:, None] > labels[None, :], logits.dtype)
    per_pair = tf.nn.softplus(-(logits[:, None] - logits[None, :]))
    return tf.math.divide_no_nan(tf.reduce_sum(pairs * per_pair), tf.reduce_sum(pairs))


def negative_shifts(n: tf.Tensor, num_negatives: int | None, seed: int | None = None
                    ) -> tf.Tensor:
    """Row offsets (int32) of a positive row's negatives in a batch of ``n`` rows.

    ``None``: every other row (``1 .. n-1``).  An int ``N``: ``min(N, n-1)`` distinct offsets
    drawn at random for this batch, the same for every row (EasyRec rolls the item matrix by
    random shifts; distinct shifts give each row distinct negatives).
    """
    shifts = tf.range(1, tf.cast(n, tf.int32), dtype=tf.int32)
    if num_negatives is None:
        return shifts
    return tf.random.shuffle(shifts, seed=seed)[:num_negatives]


def softmax_loss(user_embedding: tf.Tensor, item_embedding: tf.Tensor, labels: tf.Tensor,
                 item_ids: tf.Tensor | None = None, item_logq: tf.Tensor | None = None, *,
                 num_negatives: int | None = None, margin: float = 0.0, scale: float = 1.0,
                 sv_coefficient: float = 1.0, shifts: tf.Tensor | None = None,
                 item_bias: tf.Tensor | None = None) -> tf.Tensor:
    """Softmax over in-batch negatives with support-vector hard-negative weighting.

    For each row ``i`` with label > 0: ``s+ = cos(user_i, item_i)``; its negatives are the
    items of the rows ``(i + shift) mod n`` for each shift of :func:`negative_shifts` (or
    ``shifts`` if given: distinct, none a multiple of ``n``) and ``s_k`` their cosines with
    ``user_i``.  A negative is *hard* when
    ``s_k > s+ - margin``; hard ones become ``t * s_k + t - 1`` (``t = sv_coefficient``; 1 = no
    re-weighting).  ``logits = scale * [s+ - margin, h(s_1), ..., h(s_N)]``, cross-entropy to
    class 0, averaged over the positive rows (0 without any, or in a one-row batch).

    * ``item_ids`` ([n]): a negative holding the same item as the positive (the item clicked
      twice in the batch) is masked out (logit ``-inf``); EasyRec keeps it.
    * ``item_logq`` ([n] float, ``log q`` of each row's item): the sampled-softmax correction,
      ``log q`` of its item subtracted from every logit, the positive's included.
    * ``item_bias`` ([n] float, per row's item): added to its item's logit after the scale
      (the item prior, in the softmax's units).
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    n = tf.shape(item_embedding)[0]
    rows = tf.cast(tf.reshape(tf.where(labels > 0), [-1]), tf.int32)            # [p]
    users = tf.gather(user_embedding, rows)
    # the logits are taken in place, as the columns of the [p, n] similarity matrix (column
    # j: row j's item), the positive's own column holding its logit, rather than gathered
    # into [p, k] rolled copies: the gathers and their gradients' scatters were most of the
    # loss's cost; a column that is not one of a row's negatives is masked (-inf)
    sim = tf.matmul(users, item_embedding, transpose_b=True)                    # [p, n]
    s_pos = tf.reduce_sum(users * tf.gather(item_embedding, rows), axis=1)      # [p]
    hard = sim > s_pos[:, None] - margin
    negatives = scale * tf.where(hard, sv_coefficient * sim + (sv_coefficient - 1.0), sim)
    positive = scale * (s_pos - margin)
    if item_bias is not None:
        bias = tf.reshape(tf.cast(item_bias, negatives.dtype), [-1])
        negatives += bias[None, :]
        positive += tf.gather(bias, rows)
    if item_logq is not None:
        logq = tf.reshape(tf.cast(item_logq, negatives.dtype), [-1])
        negatives -= logq[None, :]
        positive -= tf.gather(logq, rows)
    offset = tf.math.floormod(tf.range(n)[None, :] - rows[:, None], n)           # [p, n]
    own = tf.equal(offset, 0)
    dropped = own
    if shifts is not None or num_negatives is not None:  # only the shifts' columns
        if shifts is None:
            shifts = negative_shifts(n, num_negatives)
        shifts = tf.math.floormod(tf.cast(tf.reshape(shifts, [-1]), tf.int32), n)
        is_shift = tf.scatter_nd(shifts[:, None], tf.ones_like(shifts, tf.bool), [n])
        dropped = tf.logical_or(dropped, tf.logical_not(tf.gather(is_shift, offset)))
    if item_ids is not None:
        # each id's index among the batch's distinct ids: the [p, n] comparison is then of
        # integers, not strings (a string compare per negative: 4 % of a training step's ops)
        ids = tf.unique(tf.reshape(item_ids, [-1])).idx
        same = tf.equal(ids[None, :], tf.gather(ids, rows)[:, None])
        dropped = tf.logical_or(dropped, same)
    logits = tf.where(dropped, tf.constant(float("-inf"), negatives.dtype), negatives)
    logits = tf.where(own, positive[:, None], logits)
    per_row = tf.reduce_logsumexp(logits, axis=1) - positive
    return tf.math.divide_no_nan(tf.reduce_sum(per_row), tf.cast(tf.size(rows), per_row.dtype))


def item_log_frequency(item_ids: np.ndarray) -> np.ndarray:
    """``log q`` per row: log of the share of rows holding the row's item (float32 [n]).

    The in-batch negatives are other rows' items, so an item is drawn as a negative in
    proportion to its rows in the training data: that share estimates its sampling
    probability ``q`` for the logQ correction.
    """
    ids = np.asarray(item_ids).astype(str)
    if len(ids) == 0:
        return np.zeros([0], np.float32)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return np.log(counts[inverse] / len(ids)).astype(np.float32)
