"""The prepared GPU check : ``python -m tools.gpu_check`` / ``make gpu-check``.

- ``carry.py``: what travels to the GPU machine (wheels, float16 MiniLM, GLUE), ``make gpu-wheels``;
- ``plan.py``: the real sizes and the dry run's;
- ``machine.py``: step 1's record of the machine, ``env.json``;
- ``jobs.py``: several trainings at once until a deadline;
- ``summary.py``: the README.md of the results;
- ``__main__.py``: the steps in order under one time limit.
"""
