"""The skill gallery (``urlb-skills``): what pre-training learned, shown per skill.

Every snapshot of a pre-training run is rolled out with K skills from one start state (exploration
methods: K noise seeds). Positions come from the simulator. Outputs under the run directory's
``skills/``: trajectories per snapshot, the learned space coloured per skill, coverage (distinct
cells visited, METRA's measure), skills.csv, optional tiled videos and an HTML page.
Modules: measures (positions, coverage, distance), rollouts, sources (what is read), figures,
tables, video, html, cli, tensorboard (the pre-training hook).
"""
