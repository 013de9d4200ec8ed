"""What users read about a run from its run directory, without running anything.

``funnel`` prints the per-stage table and reasons (``thresher stats``); ``diff`` compares
two runs; ``dups`` shows the largest duplicate clusters; ``status`` reports tasks done,
running, pending and failed per phase; ``samples`` shows sampled dropped documents.
All of them read the run through ``pipelines.rundir.RunDir``.
"""
