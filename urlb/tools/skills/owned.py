"""What the gallery owns in an output directory: the files it wrote there, listed in a
manifest. A re-run replaces them and removes those it no longer writes (an index.html of an
earlier ``--html`` call, a video of a snapshot not asked for now); any other file is left alone."""

from __future__ import annotations

from pathlib import Path

MANIFEST = ".urlb-skills-files"


class OwnedFiles:
    """Collects the files written into ``directory``; ``finish`` removes the previous call's
    files not written again and saves the new list."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        manifest = directory / MANIFEST
        self.previous = set(manifest.read_text().split("\n")) - {""} if manifest.is_file() else set()
        self.written: set[str] = set()

    def add(self, path: Path) -> Path:
        self.written.add(path.relative_to(self.directory).as_posix())
        return path

    def finish(self) -> list[Path]:
        removed = []
        for name in sorted(self.previous - self.written):
            stale = self.directory / name
            if ".." not in Path(name).parts and not Path(name).is_absolute() and stale.is_file():
                stale.unlink()
                removed.append(stale)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MANIFEST).write_text("".join(f"{name}\n" for name in sorted(self.written)))
        return removed
