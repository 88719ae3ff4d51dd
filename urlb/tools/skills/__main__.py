"""``python -m urlb.tools.skills``: the skill gallery (same as ``urlb-skills``)."""

from urlb.tools.skills.cli import main

main()
