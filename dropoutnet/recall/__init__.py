"""Recall: the pgvector store of each version's user and item vectors, the top-N query of the
active version, and the HTTP recall API that serves it."""
