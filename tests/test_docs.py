"""The commands shown in README.md and docs/ stay true.

Every ``bash`` block in those pages is preceded by a marker comment saying what checks it:
- ``<!-- commands: checked -->``: short enough to run here; tests run their tiny variants;
- ``<!-- commands: needs-gpu -->`` / ``<!-- commands: needs-cluster -->``: paper-scale or cluster
  commands that no CPU test runs; their page says so;
- ``<!-- commands: needs-public-code -->``: runs the public URLB code beside ours (a checkout
  outside the project, see docs/ddpg-public.md);
- ``<!-- commands: ci -->``: run as written by ``.ci/run`` (the test command, the docs build).
Whatever the marker, each ``python pretrain.py`` / ``python finetune.py`` line is composed by
Hydra and passes the configuration checks a run makes before any work (an unknown agent, task,
key or value fails here), and each tool command's flags appear in that tool's ``--help``.
A block without a marker fails, so a new command cannot slip in unmarked.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, child_env

MARKER = re.compile(r"<!-- commands: (checked|needs-gpu|needs-cluster|needs-public-code|ci) -->\s*\n```bash\n(.*?)```", re.S)
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Tools a documented command may call, and how to ask each for its flags.
TOOLS = {
    "urlb-aggregate": [sys.executable, "-m", "urlb.tools.aggregate"],
    "urlb-bench": [sys.executable, "-m", "urlb.tools.bench"],
    "urlb-bench-render": [sys.executable, "-m", "urlb.tools.bench_render"],
    "urlb-skills": [sys.executable, "-m", "urlb.tools.skills"],
    "urlb-check-agent": [sys.executable, "-m", "urlb.tools.check_agent"],
}


def commands(text: str) -> list[str]:
    """The command lines of a bash block: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.split(" #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every command of every marked bash block."""
    return [(page.name, c) for page in PAGES for _, body in MARKER.findall(page.read_text()) for c in commands(body)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_bash_block_is_marked(page: Path) -> None:
    text = page.read_text()
    assert len(MARKER.findall(text)) == len(BLOCK.findall(text)), (
        f"{page.name}: a ```bash block without a '<!-- commands: KIND -->' line above it (see this file's docstring)"
    )


def _first_of_sweep(override: str) -> str:
    """``agent=cic,apt`` -> ``agent=cic``: one job of a multirun sweep (lists in brackets kept)."""
    key, sep, value = override.partition("=")
    if sep and "," in value and not value.startswith("["):
        value = value.split(",")[0]
    return f"{key}{sep}{value}"


def _check_run_command(argv: list[str]) -> None:
    from hydra import compose, initialize_config_dir

    from urlb.runs.config import validate

    # "..." stands for the rest of a command shown in part.
    script, overrides = argv[0], [a for a in argv[1:] if not a.startswith("-") and a != "..."]
    overrides = [_first_of_sweep(o) for o in overrides if not o.startswith("hydra")]
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3", job_name=Path(script).stem):
        cfg = compose(config_name=Path(script).stem, overrides=overrides)
    validate(cfg)


def test_documented_run_commands_pass_the_configuration_checks(monkeypatch) -> None:
    import urlb.runs.config  # noqa: F401  (registers the config resolvers)

    # Pixel commands for a GPU machine keep URLB's replay size; this machine's memory is not theirs.
    monkeypatch.setattr("urlb.runs.config_checks.available_memory_bytes", lambda: None)

    checked = [(page, c) for page, c in documented_commands() if "pretrain.py" in c or "finetune.py" in c]
    assert checked, "no documented pretrain/finetune command found"
    for page, command in checked:
        # A fresh-machine line chains install, export and runs with &&: check each run.
        for part in command.split("&&"):
            argv = shlex.split(part.strip())
            # A method of the user's own package (agent=pkg.module:Class) is run end to end by
            # tests/test_check_agent.py with a package made there; it cannot be composed here.
            own_method = any(a.startswith("agent=") and ":" in a for a in argv)
            if argv[:1] == ["python"] and argv[1:2] and argv[1] in ("pretrain.py", "finetune.py") and not own_method:
                try:
                    _check_run_command(argv[1:])
                except Exception as exc:  # the message names the bad key or value
                    pytest.fail(f"{page}: `{part.strip()}` is refused: {exc}")


def test_documented_tool_flags_exist() -> None:
    used: dict[str, set[str]] = {}
    for _, command in documented_commands():
        argv = command.split()
        tool = next((t for t in TOOLS if argv[:1] == [t]), None)
        if tool is None and argv[:2] == ["python", "-m"]:
            tool = next((t for t, cmd in TOOLS.items() if cmd[2] == argv[2]), None)
        if tool is not None:  # flags of a synopsis too: `[--frame N]`
            used.setdefault(tool, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", command))
    for tool, flags in used.items():
        out = subprocess.run([*TOOLS[tool], "--help"], capture_output=True, text=True, env=child_env(), cwd=REPO)
        assert out.returncode == 0, f"{tool} --help failed: {out.stderr[-300:]}"
        unknown = sorted(f for f in flags if f not in out.stdout)
        assert not unknown, f"{tool}: documented flags {unknown} are not in its --help"
