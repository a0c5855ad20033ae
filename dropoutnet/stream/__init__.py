"""The real-time half (the daily DAG is the batch half): new items embedded from the item
tables' change log within seconds, into the active version's item vectors.

:mod:`dropoutnet.stream.pgoutput` decodes PostgreSQL's ``pgoutput`` logical replication
protocol (what a publication and a logical replication slot stream).
"""
