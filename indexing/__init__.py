"""FAISS indexing and versioned, atomic, gated publishing of the two-tower model.

Modules: ``builder`` (pure index factory + ANN measurement), ``candidate_checks`` (the exported
candidate's files, embeddings and item tower), ``staging`` (the entry point
``build_index_for_day``), ``gate`` (the publish gate), ``publish`` (the entry point
``publish_day``: the publish transaction), ``version_store`` (lock, atomic swap, recovery,
LATEST switch, retention), ``loaded_version`` (a verified version), ``artifacts`` (listing,
loading, rollback: the public face of the versions store), ``checksums``, ``manifest``,
``query`` (top-k for a user), ``serving_bundle`` and ``reference_client``. What "published"
means is :mod:`core.published`. Nothing heavy is imported here.
"""
