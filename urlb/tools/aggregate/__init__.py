"""Aggregate URLB fine-tuning runs into tables, rliable metrics and plots.

Usage::

    urlb-aggregate RUNS... --out DIR [--frame N] [--published]
        [--reps 2000] [--seed 0] [--obs-type states|pixels] [--finetune-frames N]

(or ``python -m urlb.tools.aggregate``).

A fine-tuning run directory holds ``config.yaml`` (resolved OmegaConf config) and
``eval.csv`` (one row per evaluation).  Run directories are found at any depth below
the given paths.  Each run contributes its evaluation return at the chosen frame
(default: the final one, ``num_train_frames``), normalised by the task's expert score
(``normalised = return / expert``, see :data:`urlb.tasks.EXPERT_SCORES`).

Runs that cannot be compared fairly (incomplete, duplicated, another observation type
or fine-tuning budget than the majority, unreadable files) are excluded with a printed
reason and listed in ``excluded.csv``; they are never mixed in silently.

Aggregate metrics (IQM, mean, median, optimality gap) and their 95% stratified
bootstrap confidence intervals come from rliable.  rliable needs rectangular
``(num_seeds, num_tasks)`` matrices, so when tasks have different numbers of seeds the
matrix keeps the lowest ``m`` seeds of every task, ``m`` being the smallest seed count
among the tasks; the dropped runs are counted in the output and reported.

Modules, in pipeline order: :mod:`~urlb.tools.aggregate.runs` (finding, reading and
filtering runs), :mod:`~urlb.tools.aggregate.stats` (normalised scores, per-task
statistics, rliable aggregates), :mod:`~urlb.tools.aggregate.tables` (markdown),
:mod:`~urlb.tools.aggregate.plots` and :mod:`~urlb.tools.aggregate.cli` (the command).
"""
