"""Where the pipeline's files live (local disk or an S3-compatible object store, ``[paths] remote``)
and how one machine's working copy follows the store (:mod:`storage.sync`)."""
