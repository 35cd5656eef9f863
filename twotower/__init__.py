"""twotower: daily batch pipeline from raw feed logs to a published two-tower FAISS artifact.

Packages (one per stage; see README "Layout"):
  contracts/  data contracts (schemas as constants) and the storage layout
  logsim/     the daily log simulator with planted ground truth
  importers/  MIND and generic interaction-log importers into the raw contract
  etl/        PySpark jobs: positives, resampling, hard negatives, sampling tables, features
  quality/    Great Expectations suites, gates, quarantine and data-quality reports
  training/   PyTorch two-tower model, losses, samplers, training loop, evaluation, export
  indexing/   FAISS index build, versioned atomic publishing, artifacts and query
  twotower/   config, CLI, Spark session, the pipeline steps shared by the DAG and the CLI
"""

__version__ = "0.1.0"
