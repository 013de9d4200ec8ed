"""Export to training: tokenised, shuffled, mixture-weighted token files (docs/export.md).

``tokenize_export`` (the stage, and ``thresher export`` on a finished run) writes
Megatron ``.bin/.idx``, nanotron/datatrove ``.ds``, ``npy`` and MosaicML Streaming MDS
files (formats.py) whose order and bytes depend on the documents alone.
"""
