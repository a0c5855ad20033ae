"""The ground floor every concept stands on: the database (connections, partition swaps, COPY),
the SQL templates, where things live, the errors every step may raise, failpoints, progress
reports, bizdates, local processes and the HTTP services' bearer token.

Nothing here imports another concept of the package, and nothing here starts a server: the
entry points (``dropoutnet.cli``, the DAG, the local launcher) say which database to use.
"""
