"""Where things live: data roots, the run store, caches. One place, read from the environment.

Environment variables (all optional):
- TRANSFERLAB_HOME: project folder holding data/, runs/ and cache/ (default: the repo root).
- TRANSFERLAB_DATA_ROOTS: folders datasets may live in, separated by os.pathsep (default: HOME/data).
- TRANSFERLAB_STORAGE: SQLAlchemy URL of the run store (default: SQLite file HOME/runs/transferlab.db).
- TRANSFERLAB_CACHE: cache folder for decoded images and backbone activations (default: HOME/cache).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path
    data_roots: tuple[Path, ...]
    storage_url: str
    cache_dir: Path
    artifacts_dir: Path = field(default=Path())

    @property
    def upload_root(self) -> Path:
        """Uploaded datasets are extracted here (the first data root)."""
        return self.data_roots[0]


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("TRANSFERLAB_HOME") or REPO_ROOT).resolve()
    roots_text = env.get("TRANSFERLAB_DATA_ROOTS", "")
    roots = tuple(Path(p).expanduser().resolve() for p in roots_text.split(os.pathsep) if p.strip())
    if not roots:
        roots = (home / "data",)
    storage = env.get("TRANSFERLAB_STORAGE") or f"sqlite:///{home / 'runs' / 'transferlab.db'}"
    cache = Path(env.get("TRANSFERLAB_CACHE") or home / "cache").resolve()
    return Settings(home=home, data_roots=roots, storage_url=storage, cache_dir=cache,
                    artifacts_dir=home / "runs" / "artifacts")
