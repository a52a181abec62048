"""What a run reads: GLUE data (``data``), the task table (``tasks``), metrics (``metrics`` and the
vendored ``glue_metric/``), models (``models``, ``hub``) and what loading a checkpoint reported
(``load_report``)."""
