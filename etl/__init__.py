"""Spark ETL: raw feed logs -> click positives, resampled positives, hard negatives, sampling
tables, vocabularies, features, training and evaluation sets (see docs/etl.md).

Entry points live in :mod:`etl.jobs`; all storage access in :mod:`etl.io`; every other module
holds pure ``DataFrame -> DataFrame`` (or numpy) transforms. Importing the package is cheap.
"""
