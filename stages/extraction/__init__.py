"""Extraction: HTML to main text (trafilatura, with a byte-identical faster path; or
resiliparse)."""
