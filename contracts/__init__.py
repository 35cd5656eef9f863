"""Data contracts (schemas as named constants) and the storage layout."""
