"""Where a sweep's files live: the one artifact store every process of a sweep, on any machine, writes
and reads through, and this machine's read-through cache of it.

The store is Optuna's (`optuna.artifacts`): a folder (`FileSystemArtifactStore`, local or shared) or
S3-compatible object storage (`Boto3ArtifactStore`), so optuna-dashboard lists and downloads the same
files. Each file is an artifact of its trial (out-of-fold scores, kept fold models) or of its sweep's
study (final models), with Optuna's id (a uuid) and its meta in the trial's or study's system
attributes; the records refer to a file as "ID/FILENAME". An artifact is never rewritten, so a copy in
the cache, kept by id, is always current. Files of runs from before this store sit under the home
(`legacy`), where the default store's folder is; their records hold absolute paths, used as they are.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

_META = "artifacts:"          # Optuna's prefix of an artifact's meta in system attributes
S3 = "s3://"
OOF_FILE = "oof.npz"          # a trial's out-of-fold scores
CUT_FILE = "cut.txt"          # the layer below which a trial's kept fold models are frozen
INLINE_MAX = 1000             # optuna-dashboard shows a non-string attribute's JSON cut at 1,024 characters
_PAYLOAD = "artifact"         # the key of an attribute's reference to the payload it stands for
_WRITTEN_TO = "store"         # ... and of the artifact store its writer used
_PAYLOADS_KEPT = 512          # payload texts kept in memory, by reference
_REF = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[^/]+")


def fold_file(fold: int) -> str:
    """The file name of a kept fold model (fold 0 -> fold1.keras)."""
    return f"fold{fold + 1}.keras"


def has_fold_models(folder: Path | None, folds: int) -> bool:
    """Whether `folder` holds all K kept fold models and their cut."""
    return folder is not None and all((folder / name).exists()
                                      for name in (CUT_FILE, *(fold_file(k) for k in range(folds))))


def is_fold_file(name: str) -> bool:
    return name == CUT_FILE or re.fullmatch(r"fold\d+\.keras", name) is not None


class _Folder(FileSystemArtifactStore):
    """Optuna's folder store, writing each file whole (a partial file renamed), since Optuna records
    an artifact's meta before its bytes: a reader on another machine never sees half a file."""

    def __init__(self, base: Path):
        super().__init__(base)
        self.base = base

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        super().write(artifact_id + ".partial", content_body)
        os.replace(self.base / (artifact_id + ".partial"), self.base / artifact_id)


class _Bucket(Boto3ArtifactStore):
    """Optuna's S3 store under a key prefix, so one bucket can serve several projects. The client reads
    the usual AWS variables (`AWS_ENDPOINT_URL` for MinIO, Ceph, R2 and the like)."""

    def __init__(self, bucket: str, prefix: str):
        import boto3
        super().__init__(bucket, boto3.client("s3"))
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return super().open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        super().write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        super().remove(self.prefix + artifact_id)


def open_store(location: str) -> _Folder | _Bucket:
    """Optuna's artifact store at `location`: a folder, or s3://BUCKET[/PREFIX]."""
    if location.startswith(S3):
        bucket, _, prefix = location[len(S3):].partition("/")
        return _Bucket(bucket, prefix)
    return _Folder(Path(location).expanduser())


def refs(system_attrs: dict[str, Any]) -> list[str]:
    """The references ("ID/FILENAME") of the artifacts a trial's or study's system attributes list, in
    upload order; removed ones (meta `null`, as optuna-dashboard leaves them) left out."""
    found = []
    for key, value in system_attrs.items():
        meta = json.loads(value) if key.startswith(_META) and isinstance(value, str) else None
        if meta:
            found.append(f"{meta['artifact_id']}/{meta['filename']}")
    return found


def payload(attribute: Any) -> str | None:
    """The reference of the artifact an attribute stands for (`Artifacts.outline`); None for a plain one."""
    return attribute.get(_PAYLOAD) if isinstance(attribute, dict) else None


def written_to(attribute: Any) -> str | None:
    """The artifact store the writer of an attribute's payload used (`Artifacts.outline`)."""
    return attribute.get(_WRITTEN_TO) if isinstance(attribute, dict) else None


def filename(ref: str) -> str:
    return Path(ref).name


def is_ref(text: str) -> bool:
    """An artifact reference ("ID/FILENAME"), not a path from before the store."""
    return _REF.fullmatch(text) is not None


class Artifacts:
    """One sweep store's artifact store (`location`: a folder or s3://...), its cache under `cache_dir`,
    and `legacy`: the home's folder, where runs before it kept their files and this machine keeps its
    own (driver and worker logs, the launch lock)."""

    def __init__(self, location: str, cache_dir: Path, legacy: Path):
        self.location, self.cache_dir, self.legacy = location, Path(cache_dir), Path(legacy)
        self._store: _Folder | _Bucket | None = None
        self._texts: OrderedDict[str, bytes] = OrderedDict()     # payload reference -> its JSON
        self._lock = threading.Lock()        # the app's sessions share one store

    @property
    def store(self) -> _Folder | _Bucket:
        """Optuna's artifact store, opened on first use (a sweep that keeps no file never opens it)."""
        if self._store is None:
            self._store = open_store(self.location)
        return self._store

    def oof_file(self, trial: FrozenTrial, sweep: str) -> Path | None:
        """A trial's out-of-fold scores as a local file (from the store, or where a run from before it kept
        them); None when it kept none."""
        kept = [ref for ref in refs(trial.system_attrs) if filename(ref) == OOF_FILE]
        if not kept:
            legacy = self.legacy / sweep / "oof" / f"trial-{trial.number}.npz"
            return legacy if legacy.exists() else None
        try:
            return self.local(kept[-1])
        except ArtifactNotFound:
            return None

    def fold_folder(self, trial: FrozenTrial, sweep: str) -> Path | None:
        """A local folder of the fold models a trial kept (from the store, or where a run from before it
        kept them); None when it kept none or they were dropped."""
        kept = [ref for ref in refs(trial.system_attrs) if is_fold_file(filename(ref))]
        if not kept:
            legacy = self.legacy / sweep / "folds" / f"trial-{trial.number}"
            return legacy if legacy.exists() else None
        try:
            return self.gather(kept, self.cache_dir / "folds" / kept[0].partition("/")[0])
        except ArtifactNotFound:
            return None

    def drop_folds(self, trial: FrozenTrial, sweep: str) -> None:
        """Delete the fold models a trial kept. (Optuna keeps a finished trial's artifact list as it was:
        the meta of a dropped file stays, and reading it finds nothing.)"""
        for ref in refs(trial.system_attrs):
            if is_fold_file(filename(ref)):
                self.remove(ref)
        shutil.rmtree(self.legacy / sweep / "folds" / f"trial-{trial.number}", ignore_errors=True)

    def local_folder(self, sweep: str) -> Path:
        """This machine's own files of a sweep (logs, the launch lock), and its files from before."""
        folder = self.legacy / sweep
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A fresh local folder to write files in before `keep` takes them; removed afterwards."""
        root = self.cache_dir / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as folder:
            yield Path(folder)

    def keep(self, path: Path, owner: optuna.Trial | optuna.Study) -> str:
        """Upload the file at `path` as an artifact of `owner` (a trial, or a sweep's study); returns its
        reference. The file moves into the cache: this machine never downloads what it wrote."""
        artifact_id = upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=owner)
        cached = self.cache_dir / "files" / artifact_id / path.name
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, cached)
        return f"{artifact_id}/{path.name}"

    def local(self, ref: str, written_to: str | None = None) -> Path:
        """A local file holding the artifact `ref` (downloaded once into the cache); a path (a record from
        before the store) as it is. ArtifactNotFound when the store has no such file. `written_to`: the
        store its writer named, looked in when this one lacks it (a process started with another
        TRANSFERLAB_ARTIFACTS on the same machine; on another machine the same store may have another path)."""
        if not is_ref(ref):
            return Path(ref)
        artifact_id, _, name = ref.partition("/")
        target = self.cache_dir / "files" / artifact_id / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.{os.getpid()}.partial")
            with self._open(artifact_id, written_to) as reader, open(partial, "wb") as out:
                shutil.copyfileobj(reader, out)
            partial.replace(target)
        return target

    def _open(self, artifact_id: str, written_to: str | None) -> BinaryIO:
        try:
            return self.store.open_reader(artifact_id)
        except ArtifactNotFound:
            if not written_to or written_to == self.location:
                raise
            return open_store(written_to).open_reader(artifact_id)

    def gather(self, found: list[str], folder: Path) -> Path:
        """The artifacts `found` as files of one local folder, under their own names (hard links into the
        cache where the file system allows)."""
        folder.mkdir(parents=True, exist_ok=True)
        for ref in found:
            link, source = folder / filename(ref), self.local(ref)
            if not link.exists():
                try:
                    os.link(source, link)
                except OSError:
                    shutil.copyfile(source, link)
        return folder

    def outline(self, value: Any, name: str, summary: dict[str, Any]) -> Any:
        """What an attribute keeps of a record `value`: the value itself when its JSON is short, else a new
        JSON artifact holding it (`name`.json; never rewritten, so readers cache it by reference) and an
        attribute of its reference plus `summary`, a few fields a viewer such as optuna-dashboard shows."""
        text = json.dumps(value).encode()
        if len(text) <= INLINE_MAX:
            return value
        artifact_id = str(uuid.uuid4())
        self.store.write(artifact_id, io.BytesIO(text))
        ref = f"{artifact_id}/{name}.json"
        self._remember(ref, text)
        return {_PAYLOAD: ref, _WRITTEN_TO: self.location, **summary}

    def full(self, attribute: Any) -> Any:
        """The record an attribute stands for: `outline`'s artifact read back (once per process, kept in
        memory, not on disk), or the attribute itself."""
        ref = payload(attribute)
        if ref is None:
            return attribute
        with self._lock:
            text = self._texts.get(ref)
        if text is None:
            try:
                with self._open(ref.partition("/")[0], written_to(attribute)) as reader:
                    text = reader.read()
            except ArtifactNotFound as error:
                raise ArtifactNotFound(f"record {ref} is not in the artifact store {self.location}: set "
                                       "TRANSFERLAB_ARTIFACTS to the store the sweep's processes use") from error
        self._remember(ref, text)
        return json.loads(text)

    def _remember(self, ref: str, text: bytes) -> None:
        with self._lock:
            self._texts[ref] = text
            self._texts.move_to_end(ref)
            while len(self._texts) > _PAYLOADS_KEPT:
                self._texts.popitem(last=False)

    def remove(self, ref: str) -> None:
        """Delete an artifact from the store and the cache (gone already: nothing to do). A file from
        before the store is deleted where it is, when it lies in this machine's sweep folders."""
        if not is_ref(ref):
            if Path(ref).resolve().is_relative_to(self.legacy.resolve()):
                Path(ref).unlink(missing_ok=True)
            return
        artifact_id = ref.partition("/")[0]
        try:
            self.store.remove(artifact_id)
        except ArtifactNotFound:
            pass
        shutil.rmtree(self.cache_dir / "files" / artifact_id, ignore_errors=True)
