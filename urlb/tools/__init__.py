"""Tools users run on results, apart from the training core.

``urlb.tools.aggregate`` turns fine-tuning runs into tables, rliable aggregate metrics
and plots (``urlb-aggregate``).
"""
