"""Tools users run on results, apart from the training core.

``urlb.tools.aggregate`` turns fine-tuning runs into tables, rliable aggregate metrics
and plots (``urlb-aggregate``).
``urlb.tools.skills`` rolls out the skills of pre-training snapshots and draws them
(``urlb-skills``); ``urlb.tools.pretrained`` finds pre-training runs and loads their snapshots
(shared by ``objectives`` and ``skills``).
"""
