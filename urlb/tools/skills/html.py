"""skills/index.html: one page per run, and one for a whole tree (agents x snapshots).

Self-contained: inline style, no script, no network; pictures and videos by relative path,
so the page opens from disk in any browser and keeps working when the tree is copied.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from urlb.tools.skills.tables import RunOutputs

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
video { border: 1px solid #ddd; margin: 0.3em 0.5em 0.3em 0; }
.note { color: #666; font-size: 0.9em; }
"""


def _rel(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _run_section(run: RunOutputs, page: Path, heading: bool = True) -> list[str]:
    e = html.escape
    parts = [f"<h2>{e(run.title)}</h2>"] if heading else []
    if run.start_note:
        where = run.start_note.removeprefix("start state: ")
        parts.append(f'<p class="note">Every rollout below starts from one state: {e(where)}.</p>')
    if run.missing:
        parts.append(
            f'<p class="note">snapshots configured but not written (run stopped early): '
            f"{e(', '.join(f'{f:,}' for f in run.missing))}</p>"
        )
    score = f"<th>{e(run.score_name.replace('_', ' '))} (mean)</th>" if run.score else ""
    parts.append(
        f"<table><tr><th>snapshot (frames)</th><th>cells visited by all skills ({e(run.cell_note)})</th>"
        f"<th>distance travelled per skill (m, mean)</th>{score}</tr>"
    )
    for frames, cells in sorted(run.coverage.items()):
        cell = f"<td>{run.score[frames]:.3f}</td>" if run.score else ""
        parts.append(f"<tr><td>{frames:,}</td><td>{cells}</td><td>{run.distance[frames]:.2f}</td>{cell}</tr>")
    parts.append("</table>")
    for key, caption in (
        ("trajectories", "paths per skill (walker: torso x over time; quadruped: torso x-y; jaco: hand x-y)"),
        (
            "method",
            "the method's own picture (METRA: phi paths and z; DIAYN/SMM/APS: confusion; CIC: embeddings; "
            "others: state visitation)",
        ),
        ("coverage", "coverage per snapshot"),
    ):
        if key in run.files:
            parts.append(
                f'<figure><img src="{e(_rel(run.files[key], page))}" alt="{e(caption)}">'
                f'<figcaption class="note">{e(caption)}</figcaption></figure>'
            )
    for frames, video in sorted(run.videos.items()):
        parts.append(
            f'<figure><video src="{e(_rel(video, page))}" controls loop muted></video>'
            f'<figcaption class="note">{frames:,} frames: skills tiled left to right, '
            f"top to bottom, each labelled in its colour</figcaption></figure>"
        )
    if "csv" in run.files:
        parts.append(
            f'<p><a href="{e(_rel(run.files["csv"], page))}">skills.csv</a> (per snapshot and skill: '
            f"final position, distance, the method's own score)</p>"
        )
    return parts


def write_run_index(run: RunOutputs) -> Path:
    page = run.out_dir / "index.html"
    page.write_text(
        _page(
            f"skills: {run.title}",
            [f"<h1>Skills: {html.escape(run.title)}</h1>", *_run_section(run, page, heading=False)],
        )
    )
    return page


def write_tree_index(directory: Path, runs: list[RunOutputs], starts: dict) -> Path:
    """``directory/index.html``: per domain, the start state, methods x snapshots and coverage of
    every seed; then a coverage table of every run and each run's pictures."""
    e = html.escape
    page = directory / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    body = ["<h1>Skills compared</h1>"]
    for domain in sorted({run.domain for run in runs}):
        files = next(r.compare_files for r in runs if r.domain == domain)
        note = starts[domain][1].describe().removeprefix("start state: ")
        body += [
            f"<h2>{e(domain)}</h2>",
            f'<p class="note">Every rollout of every method, seed and snapshot starts from one state: {e(note)}.</p>',
            f'<figure><img src="{e(_rel(files["compare"], page))}" alt="methods x snapshots">'
            '<figcaption class="note">methods (rows) by snapshots (columns), shared axes, one colour per skill '
            "index</figcaption></figure>",
            f'<figure><img src="{e(_rel(files["coverage"], page))}" alt="coverage">'
            f'<figcaption class="note">coverage against pre-training frames, every seed '
            f'(<a href="{e(_rel(files["csv"], page))}">{e(files["csv"].name)}</a>)</figcaption></figure>',
        ]
    frames = sorted({f for run in runs for f in run.coverage})
    body += [
        "<h2>Every run</h2>",
        (
            '<p class="note">cells visited by all K skills together, per snapshot (walker: 1 m cells of torso x; '
            "quadruped: 1 m cells of torso x-y; jaco: 5 cm cells of the hand)</p>"
        ),
        "<table><tr><th>run</th>" + "".join(f"<th>{f:,}</th>" for f in frames) + "</tr>",
    ]
    for run in runs:
        link = f'<a href="{e(_rel(run.out_dir / "index.html", page))}">{e(run.title)}</a>'
        body.append(f"<tr><td>{link}</td>" + "".join(f"<td>{run.coverage.get(f, '')}</td>" for f in frames) + "</tr>")
    body.append("</table>")
    for run in runs:
        body += _run_section(run, page)
    page.write_text(_page("skills compared", body))
    return page
