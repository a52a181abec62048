"""Tooling for one lent machine, kept out of the installed packages: ``tools/gpu_check/`` (``make gpu-check``)."""
