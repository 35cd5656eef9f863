"""Spark ETL: raw feed logs -> click positives, resampled positives, hard negatives, sampling
tables, vocabularies, features, training and evaluation sets (see docs/etl.md).

Entry points (the stage graph and ``run_stage``) live in :mod:`etl.jobs`; each stage's job in
:mod:`etl.stages`; all storage access in :mod:`etl.io`; every other module holds pure
``DataFrame -> DataFrame`` (or numpy) transforms. Importing the package is cheap.
"""
