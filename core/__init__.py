"""The core every stage builds on: typed config, errors, the Spark session, what "published" means, the run context."""
