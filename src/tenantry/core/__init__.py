"""The smallest shared pieces: domain errors, ids, wire primitives, SQLSTATE reading, logging."""
