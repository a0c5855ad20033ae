"""The pipeline's steps, side by side, one module each, in the DAG's order: samples, train,
export, embeddings, evaluate, publish, deploy, retention.

A step does one bizdate's work of one task and uses only the shared parts below it (the
registry, the embedding store and sample partitions, the model, features, db, sql); it never
imports another step.  :mod:`dropoutnet.pipeline` wires them into the DAG's tasks (the run
lock, the bizdate, the config).
"""
