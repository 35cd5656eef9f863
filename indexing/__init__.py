"""FAISS indexing and versioned, atomic, gated publishing of the two-tower model.

Modules: ``builder`` (pure index factory + ANN measurement), ``checksums``, ``manifest``,
``artifacts`` (loading, listing, rollback, retention), ``publish`` (the stage entry points
``build_index_for_day`` and ``publish_day``), ``query`` (top-k for a user) and ``cli``.
Nothing heavy is imported here.
"""
