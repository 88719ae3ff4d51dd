"""Markdown tables: per-task results and aggregate metrics with their footnotes."""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from urlb.tasks import DOMAINS
from urlb.tools.aggregate.stats import METRICS, OVERALL, PUBLISHED_NOTE, scope_tasks

MISSING = "—"


def _pm(mean: float, se: float, digits: int) -> str:
    """'mean ± se', or just the mean when the standard error is undefined (one seed)."""
    if mean is None or pd.isna(mean):
        return MISSING
    if se is None or pd.isna(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def per_task_markdown(wide: pd.DataFrame, methods: list[str], frame_text: str) -> str:
    """Two tables (raw return, normalised score); cells 'mean ± stderr (n=seeds)'."""
    parts = [f"# Per-task fine-tuning results ({frame_text})", ""]
    for title, stat, digits in (("Raw return", "return", 1), ("Normalised score (return / expert)", "norm", 3)):
        rows = []
        for _, r in wide.iterrows():
            cells = []
            for m in methods:
                cell = _pm(r[f"{m}:{stat}_mean"], r[f"{m}:{stat}_se"], digits)
                if cell != MISSING and not pd.isna(r[f"{m}:n"]):
                    cell += f" (n={int(r[f'{m}:n'])})"
                cells.append(cell)
            rows.append([r["task"], *cells])
        parts += [f"## {title}", "", _md_table(["task", *methods], rows), ""]
    parts.append(
        f"Mean ± standard error over seeds (n = seeds); {MISSING} = no runs. "
        "Published rows: the published mean ± standard error (the mean alone where no "
        "standard error was published)."
    )
    return "\n".join(parts) + "\n"


def _ci_cell(row: pd.Series, key: str) -> str:
    value = row.get(key)
    if value is None or pd.isna(value):
        return MISSING
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or pd.isna(low):
        return f"{value:.3f} (no CI)"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _published_sources(agg: pd.DataFrame) -> str:
    """'source: method, method; source: method' over the published rows of ``agg``."""
    pub = agg[agg["source"] == "published"].drop_duplicates("agent")
    by_source = pub.groupby("reference", sort=False)["agent"].agg(", ".join)
    return "; ".join(f"{source}: {methods}" for source, methods in by_source.items())


def aggregate_markdown(agg: pd.DataFrame, frame_text: str, reps: int) -> str:
    """Aggregate table (overall first, then per domain) with its footnotes."""
    header = ["method", "scope", "tasks", "seeds/task", *(name for _, name in METRICS)]
    rows = []
    for scope in (OVERALL, *DOMAINS):
        for _, r in agg[agg["scope"] == scope].iterrows():
            n_all = len(scope_tasks(scope))
            seeds = MISSING if pd.isna(r["seeds_per_task"]) else str(int(r["seeds_per_task"]))
            if r["runs_dropped"] and not pd.isna(r["runs_dropped"]):
                seeds += f" ({int(r['runs_dropped'])} dropped)"
            rows.append(
                [r["method"], scope, f"{r['n_tasks']}/{n_all}", seeds, *(_ci_cell(r, key) for key, _ in METRICS)]
            )
    notes = [
        f"Normalised score = return / expert return ({frame_text}). Point estimates "
        f"and 95% stratified bootstrap CIs ({reps} resamples of seeds within each task) "
        "from rliable. IQM: mean of the middle 50% of all (seed, task) scores; mean and "
        "median: of per-task means; optimality gap: mean shortfall below 1.",
        "Tasks with no runs are left out of a scope (tasks column), never counted as 0.",
        "seeds/task: with unequal seed counts each task keeps its lowest m seeds "
        "(m = smallest count) because rliable needs a seeds x tasks matrix.",
    ]
    if (agg["source"] == "published").any():
        notes.append(f"(published) rows: {PUBLISHED_NOTE}.")
        notes.append(f"(published) rows come from: {_published_sources(agg)}.")
    body = _md_table(header, rows)
    return f"# Aggregate fine-tuning results ({frame_text})\n\n{body}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
