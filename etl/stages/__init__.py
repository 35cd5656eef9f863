"""The job of each ETL stage, ``read -> pure transforms -> write -> statistics``, grouped by
what the stages build: :mod:`.positives` (click and resampled positives),
:mod:`.hard_negatives`, :mod:`.features` (vocabulary, features, sampling table) and
:mod:`.datasets`; :mod:`.inputs` holds the reads several stages share. The runner is
:mod:`etl.jobs`.
"""
