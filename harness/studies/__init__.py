"""Driving many runs, the parts behind ``harness.study`` and ``harness.sweep``: a pool of run.py
processes (``pool``), the runs already finished (``finished_runs``) and where each stands
(``progress``), a stage's runs (``stages``), a learning-rate grid's scores (``grid_scores``), the
rate chosen by rule (``rate_choice``) and the grid as its runs stand (``grids``), the rates a
table stage trains at (``table_rates``), and the seeds a stage adds where a paired interval
(``paired_interval``) cannot tell two methods apart (``more_seeds``), both kinds of stage listed by
``table_stages``."""
