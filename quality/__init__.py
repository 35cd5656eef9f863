"""Data quality: Great Expectations suites, the raw and output gates, quarantine and reports."""
