"""Language identification (fastText lid.176) and per-language thresholds."""
