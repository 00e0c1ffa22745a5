"""Where things live: data roots, the run store, caches. One place, read from the environment.

Environment variables (all optional):
- TRANSFERLAB_HOME: project folder holding data/, runs/ and cache/ (default: the repo root).
- TRANSFERLAB_DATA_ROOTS: folders datasets may live in, separated by os.pathsep (default: HOME/data).
- TRANSFERLAB_STORAGE: SQLAlchemy URL of the run store (default: SQLite file HOME/runs/transferlab.db).
- TRANSFERLAB_CACHE: cache folder for decoded images, backbone activations and downloaded artifacts
  (default: HOME/cache).
- TRANSFERLAB_ARTIFACTS: the artifact store every process of a sweep writes its files to (out-of-fold
  scores, fold models, final models): a folder (shared by the machines of a team) or s3://BUCKET/PREFIX
  with the usual AWS variables (AWS_ENDPOINT_URL for other S3-compatible servers); default:
  HOME/runs/artifacts.
- TRANSFERLAB_WEIGHTS_DOWNLOAD: "on" (default) or "off": may missing ImageNet weights be downloaded.
- TRANSFERLAB_WEIGHTS_MIRROR: base URL (http, https or file) serving the standard Keras weight files
  as MIRROR/<file name>, for machines behind a firewall (default: keras.applications' own servers).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
_ON = ("on", "1", "true", "yes")
_OFF = ("off", "0", "false", "no")
MIRROR_SCHEMES = ("http", "https", "file")


class SettingsError(ValueError):
    """An environment variable holds a value this project cannot use; the message names both."""


@dataclass(frozen=True)
class Settings:
    home: Path
    data_roots: tuple[Path, ...]
    storage_url: str
    cache_dir: Path
    artifacts_dir: Path = field(default=Path())     # this machine's folder of a sweep's files (logs, older runs)
    artifacts: str = ""                              # the artifact store (`core.runs.artifacts`): folder or s3://
    weights_download: bool = True
    weights_mirror: str | None = None

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
                    artifacts_dir=home / "runs" / "artifacts",
                    artifacts=_artifacts(env, "TRANSFERLAB_ARTIFACTS", home / "runs" / "artifacts"),
                    weights_download=_on_off(env, "TRANSFERLAB_WEIGHTS_DOWNLOAD", default=True),
                    weights_mirror=_mirror(env, "TRANSFERLAB_WEIGHTS_MIRROR"))


def _on_off(env: dict[str, str], name: str, default: bool) -> bool:
    """A switch; a value that is neither on nor off is an error, not silently one of them."""
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _ON + _OFF:
        raise SettingsError(f"{name}={env[name]!r}: use on or off")
    return value in _ON


def _mirror(env: dict[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if value and urlparse(value).scheme not in MIRROR_SCHEMES:
        raise SettingsError(f"{name}={value!r} is not a URL: use http://, https:// or file:// and a folder")
    return value or None


def _artifacts(env: dict[str, str], name: str, default: Path) -> str:
    """A folder (made absolute) or s3://BUCKET[/PREFIX]; any other URL is an error."""
    value = env.get(name, "").strip()
    if not value:
        return str(default)
    scheme = urlparse(value).scheme
    if scheme == "s3":
        if not urlparse(value).netloc:
            raise SettingsError(f"{name}={value!r} names no bucket: use s3://BUCKET or s3://BUCKET/PREFIX")
        return value
    if scheme and len(scheme) > 1:       # a URL of another kind (one letter: a Windows drive)
        raise SettingsError(f"{name}={value!r}: use a folder or s3://BUCKET/PREFIX")
    return str(Path(value).expanduser().resolve())
