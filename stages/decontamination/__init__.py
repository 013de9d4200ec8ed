"""Benchmark decontamination: the `decontaminate` stage builds an n-gram index of evaluation
sets once per run and drops the documents that share n-grams with an evaluation item, or
removes the overlapping spans. See docs/decontamination.md."""
