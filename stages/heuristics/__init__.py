"""Heuristic filters: Gopher quality and repetition, C4, FineWeb, character ratios, length, URL
blocklists. Threshold filters declare their rules in one table (``measured.Rule``): what
each measures, the parameter it compares with, the direction and the drop reason."""
