"""Filters decided by a model score: fastText quality classifiers and ``keep_top`` (the best
share of a score over the whole corpus, a global stage)."""
