"""Deduplication as global stages: exact (hash of normalized text) and MinHash near-duplicates.
``common`` holds what both share (doc keys, clusters, keep policies, annotate mode)."""
