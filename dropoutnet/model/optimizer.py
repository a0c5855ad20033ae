"""Adam (and AdamW) that is Adam for embedding tables too, in one kernel per variable.

Keras 3.15's ``Adam.update_step`` (TensorFlow backend) is written with backend ops on the
gradient as it comes.  An embedding lookup's gradient is a ``tf.IndexedSlices`` holding one
slice per looked-up row, repeated rows included, and ``ops.square`` squares those slices
*before* they are summed into the table's shape.  So a row looked up ``k`` times in a batch
gets the first moment ``Σ g`` (right) but the second ``Σ g²`` instead of ``(Σ g)²``: its
step is up to ``√k`` times Adam's.  Measured on the demo's model, the first step moved
embedding rows by up to 6.5 × the learning rate, where Adam's first step is at most the
learning rate.  The rows it inflates are the frequent values (a gender, a category), and how
much depends on the batch size, a setting that should not change the recipe.

:class:`Adam` sums a sparse gradient's slices first (``tf.convert_to_tensor``) and applies
TensorFlow's fused ``ResourceApplyAdam`` kernel: the update Keras documents (the same
``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` and ``epsilon`` outside the square
root), in one pass over each variable instead of about ten element-wise operations with their
temporaries.  Decoupled weight decay (AdamW) is Keras's own (applied before the update, as
``keras.optimizers.AdamW`` does), so ``Adam(lr, weight_decay=wd)`` is AdamW.  Under a
``tf.distribute`` strategy Keras calls ``update_step`` once per replica's copy of a variable,
as before; the slots' ``handle`` is then that replica's copy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Adam"]


class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (with ``weight_decay``: ``AdamW``), exact for sparse
    gradients and fused; see the module's docstring.  ``amsgrad`` falls back to Keras's."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        var, m, v = (_resource(x) for x in (variable, self._momentums[index],
                                            self._velocities[index]))
        dtype = var.dtype
        if isinstance(gradient, tf.IndexedSlices):  # repeated rows summed, then squared
            gradient = tf.convert_to_tensor(gradient)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
            use_locking=False, use_nesterov=False)


def _resource(variable):
    """The TensorFlow variable behind a Keras variable (itself when it is one already)."""
    return variable.value if isinstance(variable, keras.Variable) else variable
