"""Data quality: Great Expectations suites, gates, quarantine and reports (issue 5)."""
