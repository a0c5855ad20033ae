"""The local launcher's error: the stack cannot start or stop, and the message says why and
what to do (:mod:`dropoutnet.local.stack`, :mod:`dropoutnet.local.celery_mode`)."""


class StackError(RuntimeError):
    """The stack cannot start or stop; the message says why and what to do."""
