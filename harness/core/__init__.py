"""The base every part of the harness uses: the repository's paths (``paths``), the harness's errors
(``errors``), how a command line reports them (``cli_errors``) and ``run.py --help`` (``cli_help``)."""
