"""Driving many runs, the parts behind ``harness.study`` and ``harness.sweep``: a pool of run.py
processes (``pool``), the runs already finished (``finished_runs``), a learning-rate grid's scores
(``grid_scores``) and the rate each cell takes (``rate_choice``)."""
