"""``storage``: the schema of the derived tables and the stored vector type."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dropoutnet.config.base import Identifier, Strict


class StorageConfig(Strict):
    """Where the derived tables live, and how the embedding tables store a vector.

    ``vector_type`` is the pgvector type of ``user_embeddings`` and ``item_embeddings``:
    ``vector`` (default) stores the model's float32s exactly; ``halfvec`` (pgvector >= 0.7)
    stores each rounded to the nearest float16 (within 2^-11, 0.05 %, of the model's), half
    the bytes per vector, for large catalogues: the HNSW index shrinks less, its neighbour
    lists keep their size, and near-ties in the top N may swap.  The tables of a schema hold
    one type: a config that says the other is refused by the embedding tasks and the stream
    worker with the fix (:func:`dropoutnet.recall.vectors.ensure_tables`).
    """

    schema_: Identifier("storage.schema") = Field(default="dropoutnet", alias="schema")
    vector_type: Literal["vector", "halfvec"] = Field(
        default="vector", description="pgvector type of the embedding tables: vector "
        "(float32, the model's values exactly) or halfvec (float16, half the size)")

