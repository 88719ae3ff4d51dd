"""The only place that writes logs: console lines, a progress bar, CSV files, TensorBoard."""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from urlb.runs.files import atomic_write_text


class CSVLog:
    """Append-only CSV with a fixed header; flushed per row so a crash keeps earlier rows.

    On resume, rows logged after the checkpoint's frame are dropped first, so a restarted run
    never writes the same frame twice; so is a last line a kill cut short. A failed write leaves
    the file as it was before that row (no half row, no empty file)."""

    def __init__(self, path: Path, resume_frame: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if resume_frame is not None and path.exists():
            text = path.read_text()
            if not text.endswith("\n"):
                text = text[: text.rfind("\n") + 1]  # a row cut short by a kill
            reader = csv.DictReader(io.StringIO(text))
            self.fields = list(reader.fieldnames or []) or None
            rows = [r for r in reader if None not in r.values() and float(r.get("frame", 0)) <= resume_frame]
            if self.fields is not None:
                self._rewrite(rows)
        elif path.exists():
            path.unlink()

    def _rewrite(self, rows: list[dict]) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, out.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row)
            self._rewrite([])
        new_fields = [k for k in row if k not in self.fields]
        if new_fields:
            # Update metrics appear only once updates start: widen the header, keep the rows.
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.fields += new_fields
            self._rewrite(rows)
        out = io.StringIO()
        csv.DictWriter(out, fieldnames=self.fields).writerow(row)
        size = self.path.stat().st_size
        try:
            with self.path.open("a", newline="") as f:
                f.write(out.getvalue())
        except OSError:
            os.truncate(self.path, size)  # no half row
            raise


def _write_naming_file(log: CSVLog, row: dict[str, Any]) -> None:
    try:
        log.write(row)
    except OSError as exc:
        if exc.filename is None:  # e.g. a full disk: say which file
            raise OSError(exc.errno, exc.strerror, str(log.path)) from exc
        raise


class Logger:
    """Collects metrics from agents and the trainer and writes them in one place."""

    def __init__(
        self,
        run_dir: Path,
        total_frames: int,
        use_tb: bool = True,
        use_wandb: bool = False,
        wandb_config: dict | None = None,
        resume_frame: int | None = None,
        progress: bool = True,
        label: str = "",
    ) -> None:
        self.run_dir = Path(run_dir)
        self.label = label  # e.g. "seed 2": which of several seeds in one process a line is about
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = CSVLog(self.run_dir / "train.csv", resume_frame)
        self.eval_csv = CSVLog(self.run_dir / "eval.csv", resume_frame)
        self._metric_sums: dict[str, float] = defaultdict(float)
        self._metric_counts: dict[str, int] = defaultdict(int)
        self.tb = None
        if use_tb:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow import

            self.tb = SummaryWriter(
                str(self.run_dir / "tb"), purge_step=None if resume_frame is None else resume_frame + 1
            )
        self.wandb = None
        if use_wandb:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError("use_wandb=true needs wandb: pip install 'urlb[wandb]'") from exc
            self.wandb = wandb.init(config=wandb_config, dir=str(self.run_dir), resume="allow")
        self.bar = tqdm(
            total=total_frames,
            initial=resume_frame or 0,
            unit="frame",
            dynamic_ncols=True,
            disable=not progress or not sys.stderr.isatty(),
            file=sys.stderr,
        )

    def log_update(self, metrics: dict[str, float]) -> None:
        """Accumulate per-update metrics; they are averaged into the next episode line."""
        for k, v in metrics.items():
            self._metric_sums[k] += v
            self._metric_counts[k] += 1

    def advance(self, frames: int) -> None:
        self.bar.update(frames)

    def _scalars(self, prefix: str, row: dict[str, Any], frame: int) -> None:
        if self.tb is not None:
            for k, v in row.items():
                if k != "frame" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{prefix}/{k}", v, frame)
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in row.items()}, step=frame)

    def episode(self, row: dict[str, Any]) -> None:
        """One training episode ended: averaged update metrics join the row."""
        means = {k: self._metric_sums[k] / self._metric_counts[k] for k in self._metric_sums}
        self._metric_sums.clear()
        self._metric_counts.clear()
        row = {**row, **means}
        _write_naming_file(self.train_csv, row)
        self._scalars("train", row, row["frame"])
        self._print("train", row)

    def evaluation(self, row: dict[str, Any], elapsed: float) -> None:
        """One evaluation. Wall time is printed but kept out of eval.csv, so that two runs with
        the same seed write identical files."""
        _write_naming_file(self.eval_csv, row)
        self._scalars("eval", row, row["frame"])
        self._print("eval", {**row, "total_time": elapsed})

    def message(self, text: str, labelled: bool = True) -> None:
        """A console line; with several seeds in one process it names the seed it is about."""
        tqdm.write(f"[{self.label}] {text}" if self.label and labelled else text, file=sys.stdout)

    def _print(self, kind: str, row: dict[str, Any]) -> None:
        elapsed = time.strftime("%H:%M:%S", time.gmtime(row.get("total_time", 0)))
        # R(task): the episode's return under the task reward (in pre-training the domain's primal
        # task, informative only); R(intr): mean intrinsic reward of the updates since the last line.
        parts = [
            f"| {kind:<5}",
            *([self.label] if self.label else []),
            f"F: {row['frame']:>8}",
            f"E: {row.get('episode', 0):>5}",
            f"R(task): {row.get('episode_reward', 0.0):8.2f}",
        ]
        if "fps" in row:
            parts.append(f"FPS: {row['fps']:7.1f}")
        if "intrinsic_reward" in row:
            parts.append(f"R(intr): {row['intrinsic_reward']:.3g}")
        parts.append(f"T: {elapsed}")
        self.message(" | ".join(parts), labelled=False)  # the label is one of the parts

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
