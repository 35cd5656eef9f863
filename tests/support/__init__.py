"""Test-only helpers shared by the test modules (kept out of the production packages)."""
