"""Run reports: one HTML page per run day plus an index of every run (``reports.run_report``)."""
