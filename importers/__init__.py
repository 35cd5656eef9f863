"""Importers of real logs into the raw contract: ``importers.mind`` (MIND
behaviors/news TSV) and ``importers.interactions`` (a generic CSV/Parquet log with a column
mapping). Both validate the whole input before writing anything, then write one atomic
partition per day and table, and never a ranking log."""
