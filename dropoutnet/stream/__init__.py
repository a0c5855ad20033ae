"""The real-time half: new items embedded from the item tables' change log (issue 10).

:mod:`dropoutnet.stream.pgoutput` decodes PostgreSQL's ``pgoutput`` logical replication
protocol (what a publication and a logical replication slot stream).
"""
