"""Developer tooling kept out of the installed packages: ``tools/gpu_check/`` (``make gpu-check``, for
one lent GPU machine) and ``tools/commit_results.sh`` (a long study's results committed as they land)."""
