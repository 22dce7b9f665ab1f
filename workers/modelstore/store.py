"""The model store on one host: a folder (``STUDIO_MODEL_STORE``) with one
sub-folder per model key, each holding the model's files and a manifest.

A model is installed exactly when its folder holds ``studio-manifest.json``.
The manifest is written last, atomically, after every file is in place and
hashed, so an interrupted pull or import never looks installed. Downloads and
imports are assembled in ``.partial/<key>`` beside the models and moved into
place in one rename; a download interrupted there is resumed by the next
pull, which keeps the files that were complete.

Downloads use ``huggingface_hub.snapshot_download`` against the hub or a
mirror (the endpoint is configuration). The token, when given, goes only
where the caller sends it: without one, nothing is sent, not even a token
``huggingface_hub`` would find on the machine, because the endpoint may be a
third-party mirror.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import filelock
import httpx2
from huggingface_hub import HfApi, constants, get_cached_repo_tree, snapshot_download
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils import tqdm as hf_tqdm

logger = logging.getLogger(__name__)

MANIFEST = "studio-manifest.json"
MANIFEST_FORMAT = 1
CHUNK = 1024 * 1024

_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*")
_KEY_MAX = 100
_COMMIT = re.compile(r"[0-9a-f]{40}")
# huggingface_hub keeps its download bookkeeping in `<local_dir>/.cache`; an
# operator's copy of such a folder carries it too. It is never a model file.
_BOOKKEEPING = ".cache"
_PARTIAL = ".partial"
_TRASH = ".trash"
_LOCKS = ".locks"
# What a partial download was for: a partial of another repo is not resumed.
_PARTIAL_ORIGIN = "studio-partial.json"


class StoreError(Exception):
    """A problem with the model store, worded for the person running the studio."""


class ModelMissing(StoreError):
    """The model is not installed; the message says how to install it."""


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the model's folder, "/" separators
    size: int
    sha256: str


@dataclass(frozen=True)
class Installed:
    key: str
    folder: Path
    revision: str  # the commit a pull resolved, or what an import was told
    source: str  # "pull:<repo_id>" or "import:<original dir>"
    files: tuple[FileRecord, ...]
    installed_at: str  # ISO 8601, UTC

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Problem:
    path: str
    kind: str  # missing | size | hash | extra
    detail: str


# -- where things are ------------------------------------------------------------


def model_folder(store: Path, key: str) -> Path:
    """``store/key``, for a key that is a slug (so it can never leave the store)."""
    if not isinstance(key, str) or len(key) > _KEY_MAX or not _KEY.fullmatch(key):
        raise StoreError(
            f"{key!r} is not a model key: use lower-case letters, digits, '.', '_'"
            f" and '-', starting with a letter or digit (at most {_KEY_MAX})"
        )
    return Path(store) / key


def _partial_folder(store: Path, key: str) -> Path:
    return Path(store) / _PARTIAL / key


# -- reading ----------------------------------------------------------------------


def installed(store: Path, key: str) -> Installed | None:
    """The installed model, from its manifest; None when there is no manifest.

    A manifest that cannot be read is a StoreError, not None: the files may be
    there, and pulling over them silently would hide the damage.
    """
    folder = model_folder(store, key)
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        files = tuple(
            FileRecord(
                path=_safe_relative(f["path"]),
                size=int(f["size"]),
                sha256=str(f["sha256"]),
            )
            for f in data["files"]
        )
        return Installed(
            key=key,
            folder=folder,
            revision=str(data["revision"]),
            source=str(data["source"]),
            files=files,
            installed_at=str(data["installed_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"the manifest {path} is damaged ({exc}); run: python manage.py models"
            f" pull {key} (or models import) again"
        ) from exc


def require(store: Path, key: str) -> Installed:
    """The installed model, or ModelMissing saying how to install it."""
    found = installed(store, key)
    if found is None:
        raise ModelMissing(
            f"the model '{key}' is not in the model store ({store}); run: python"
            f" manage.py models pull {key}"
        )
    return found


def list_installed(store: Path) -> list[Installed]:
    """Every installed model, by key. A damaged manifest is logged and left out,
    so one bad folder does not hide the others (``installed`` and ``verify``
    of its key name it)."""
    root = Path(store)
    if not root.is_dir():
        return []
    found: list[Installed] = []
    for child in sorted(root.iterdir()):
        if (
            not child.is_dir()
            or not _KEY.fullmatch(child.name)
            or len(child.name) > _KEY_MAX
        ):
            continue
        try:
            model = installed(root, child.name)
        except StoreError as exc:
            logger.warning("model store: %s", exc)
            continue
        if model is not None:
            found.append(model)
    return found


# -- pulling ------------------------------------------------------------------------


def pull(
    store: Path,
    key: str,
    *,
    repo_id: str,
    revision: str,
    allow_patterns: Sequence[str] | None,
    token: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> Installed:
    """Download ``repo_id`` at ``revision`` (a commit sha, or a branch or tag that
    is resolved to one and recorded as such) into the store as ``key``.

    Only files matching ``allow_patterns`` (fnmatch, as huggingface_hub: ``*``
    crosses "/") are fetched. When the same repo, commit and patterns are already
    installed with every file at its recorded size, nothing is downloaded (a
    commit sha then needs no network at all); ``force=True`` downloads afresh,
    to repair an install that ``verify`` found damaged. ``on_progress(done,
    total)`` reports bytes; the total grows as downloads start.
    """
    store = Path(store)
    model_folder(store, key)  # rejects a bad key before anything touches the disk
    if not isinstance(revision, str) or not revision.strip():
        raise StoreError(
            f"pull {key}: give a revision (a commit sha, tag or branch) to pin what is"
            " installed"
        )
    patterns = list(allow_patterns) if allow_patterns is not None else None
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    endpoint = endpoint.rstrip("/") if endpoint else None
    # An explicit False: huggingface_hub would otherwise send a token it finds on
    # the machine, to whatever endpoint is configured.
    auth: str | bool = token if token else False

    def fail(exc: BaseException) -> StoreError:
        return StoreError(
            _scrub(_describe_hub_error(exc, repo_id, revision, hub), token)
        )

    with _key_lock(store, key):
        commit = revision if _COMMIT.fullmatch(revision) else None
        if commit is None:
            _refuse_offline(key)
            try:
                api = HfApi(endpoint=endpoint, token=auth)
                commit = api.model_info(repo_id, revision=revision).sha
            except (
                Exception
            ) as exc:  # _describe_hub_error re-raises what it does not know
                raise fail(exc) from exc
            if not commit:
                raise StoreError(
                    f"the hub at {hub} did not say which commit {revision!r} is"
                )

        try:
            current = installed(store, key)
        except StoreError:
            current = None  # a damaged manifest: pulling again is the repair
        if (
            not force
            and current is not None
            and _is_current(current, repo_id, commit, patterns)
        ):
            return current

        _refuse_offline(key)
        partial = _partial_folder(store, key)
        _prepare_partial(
            partial, {"repo_id": repo_id, "allow_patterns": patterns}, fresh=force
        )
        hub_cache = partial / _BOOKKEEPING / "studio-hub-cache"
        try:
            snapshot_download(
                repo_id,
                revision=commit,
                allow_patterns=patterns,
                local_dir=partial,
                # Keeps huggingface_hub from reading or writing the user's own
                # cache: what is installed comes from this pull alone.
                cache_dir=hub_cache,
                token=auth,
                endpoint=endpoint,
                tqdm_class=_progress_class(progress, on_progress),
            )
            listing = get_cached_repo_tree(
                repo_id, revision=commit, local_dir=partial, cache_dir=hub_cache
            )
        except CachedRepoTreeNotFoundError as exc:
            raise StoreError(
                f"could not list the files of '{repo_id}' at {commit}: {hub} refused or"
                " could not be reached; run the pull again"
            ) from exc
        except Exception as exc:  # _describe_hub_error re-raises what it does not know
            raise fail(exc) from exc

        expected = {f.path: f.size for f in listing}
        wanted = sorted(filter_repo_objects(expected, allow_patterns=patterns))
        if not wanted:
            raise StoreError(
                f"no file of '{repo_id}' at {commit} matches allow_patterns {patterns}"
            )
        reserved = [p for p in wanted if _reserved(p)]
        if reserved:
            raise StoreError(
                f"'{repo_id}' holds files the model store keeps for itself"
                f" ({', '.join(reserved[:3])}); narrow the model's file patterns"
            )
        # snapshot_download returns a partial folder as it is when the hub cannot
        # be reached, so the listing, not its return, says whether we are done.
        short = [p for p in wanted if not _has_size(partial / p, expected[p])]
        if short:
            raise StoreError(
                f"the download of '{repo_id}' is incomplete ({len(short)} file(s)"
                f" missing or short: {', '.join(short[:3])}); run the pull again to"
                " resume"
            )
        for leftover in set(_model_files(partial)) - set(wanted):
            # Left by an interrupted pull of another commit of the same repo.
            (partial / leftover).unlink()
        records = tuple(_record(partial, p) for p in wanted)
        damaged = _against_hub(records, {f.path: f for f in listing}, partial)
        if damaged:
            for path in damaged:  # fetched again by the next pull
                (partial / path).unlink(missing_ok=True)
            raise StoreError(
                f"{len(damaged)} file(s) of '{repo_id}' arrived damaged (not the"
                f" hub's hash: {', '.join(damaged[:3])}); run the pull again"
            )
        return _install(
            store,
            key,
            partial,
            revision=commit,
            source=f"pull:{repo_id}",
            files=records,
            extra={"allow_patterns": patterns},
        )


def _refuse_offline(key: str) -> None:
    # Checked up front: huggingface_hub would otherwise fall back to whatever
    # is on disk and leave the reason buried in a warning.
    if constants.is_offline_mode():
        raise StoreError(
            f"cannot pull '{key}': HF_HUB_OFFLINE is set on this host; unset it, or"
            f" copy the files here and run: python manage.py models import {key} DIR"
        )


def _is_current(
    current: Installed, repo_id: str, commit: str, patterns: list[str] | None
) -> bool:
    if current.source != f"pull:{repo_id}" or current.revision != commit:
        return False
    if _manifest_field(current.folder, "allow_patterns") != patterns:
        return False
    # Sizes only: hashing gigabytes on every pull would defeat the point.
    return all(_has_size(current.folder / f.path, f.size) for f in current.files)


def _prepare_partial(partial: Path, origin: dict[str, Any], *, fresh: bool) -> None:
    """Reuse the partial download when it was for the same thing, else start over."""
    marker = partial / _BOOKKEEPING / _PARTIAL_ORIGIN
    if partial.exists():
        try:
            same = json.loads(marker.read_text(encoding="utf-8")) == origin
        except (OSError, ValueError):
            same = False
        if fresh or not same:
            shutil.rmtree(partial)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(origin), encoding="utf-8")


def _progress_class(
    progress: bool, on_progress: Callable[[int, int], None] | None
) -> type[hf_tqdm]:
    """A tqdm class for snapshot_download: silent unless ``progress``, and
    forwarding the byte count of its overall bar to ``on_progress``."""

    class Bar(hf_tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # snapshot_download names its overall byte bar; the others (files
            # counted, network bytes) are not reported.
            self._report = on_progress is not None and kwargs.get("name") == (
                "huggingface_hub.snapshot_download"
            )
            self._done = 0
            self._lock_done = threading.Lock()
            if not progress:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._report and on_progress is not None:
                # Under the lock, so the callback sees counts in order even
                # though every download thread updates this bar.
                with self._lock_done:
                    self._done += int(n or 0)
                    on_progress(self._done, max(int(self.total or 0), self._done))
            return super().update(n)

    return Bar


def _describe_hub_error(
    exc: BaseException, repo_id: str, revision: str, hub: str
) -> str:
    resume = "; run the pull again to resume (complete files are kept)"
    if isinstance(exc, GatedRepoError):
        return (
            f"'{repo_id}' on {hub} is gated: accept its terms on the hub with the"
            " account whose token the studio uses"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"the repository '{repo_id}' was not found on {hub} (if it is private,"
            " the token is missing or has no access to it)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"the revision '{revision}' was not found in '{repo_id}' on {hub}"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return (
                f"{hub} refused access to '{repo_id}' (HTTP {status}): check the token"
            )
        if isinstance(exc, EntryNotFoundError):
            return f"a file of '{repo_id}' at {revision} is missing on {hub}{resume}"
        return f"{hub} answered HTTP {status} for '{repo_id}'{resume}"
    if isinstance(exc, LocalEntryNotFoundError):
        cause = exc.__cause__ or exc.__context__
        reason = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        return f"could not reach the hub at {hub}{reason}{resume}"
    if isinstance(exc, httpx2.HTTPError | httpx2.InvalidURL):
        return f"could not reach the hub at {hub}: {type(exc).__name__}: {exc}{resume}"
    if isinstance(exc, ValueError):
        return f"cannot pull '{repo_id}': {exc}"
    if isinstance(exc, OSError):
        # Size mismatches and full disks, from huggingface_hub's downloads.
        return f"downloading '{repo_id}' failed: {exc}{resume}"
    raise exc


def _scrub(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message


# -- importing ------------------------------------------------------------------------


def import_dir(
    store: Path,
    key: str,
    source: Path,
    *,
    allow_patterns: Sequence[str] | None = None,
    revision: str = "imported",
) -> Installed:
    """Install files an operator copied onto the host by hand.

    The files of ``source`` matching ``allow_patterns`` are copied into the store
    and hashed. When ``source`` is the model's own folder they are adopted in
    place, and files there that do not match are deleted, so the folder holds
    exactly what the manifest lists, as after a copy.
    """
    store = Path(store)
    folder = model_folder(store, key)
    source = Path(source).expanduser()
    if not source.is_dir():
        raise StoreError(f"the folder {source} does not exist")
    source = source.resolve()
    patterns = list(allow_patterns) if allow_patterns is not None else None
    in_place = source == folder.resolve()
    partial = _partial_folder(store, key)
    if not in_place:
        for inside in (folder, partial):
            if inside.resolve().is_relative_to(source):
                raise StoreError(
                    f"{source} holds the model store's folder for '{key}'; import from"
                    " the folder that holds the model's files"
                )

    with _key_lock(store, key):
        present = sorted(_model_files(source))
        if not present:
            raise StoreError(f"the folder {source} holds no files")
        wanted = sorted(filter_repo_objects(present, allow_patterns=patterns))
        if not wanted:
            raise StoreError(
                f"no file in {source} matches allow_patterns {patterns}"
                f" ({len(present)} file(s) there, e.g. {', '.join(present[:3])})"
            )
        meta = {"allow_patterns": patterns}
        if in_place:
            # Nothing may look installed while the files are being re-hashed.
            (folder / MANIFEST).unlink(missing_ok=True)
            for leftover in set(present) - set(wanted):
                (folder / leftover).unlink()
            _prune_empty_dirs(folder)
            try:
                records = tuple(_adopt(folder, p) for p in wanted)
            except OSError as exc:
                raise StoreError(f"cannot read the files in {folder}: {exc}") from exc
            _write_manifest(folder, revision, f"import:{source}", records, meta)
            return _manifest_installed(store, key)
        if partial.exists():
            shutil.rmtree(partial)  # an unfinished pull: the operator's files win
        partial.mkdir(parents=True)
        try:
            records = tuple(_copy_hashed(source / p, partial, p) for p in wanted)
        except OSError as exc:
            raise StoreError(f"cannot copy from {source}: {exc}") from exc
        return _install(
            store,
            key,
            partial,
            revision=revision,
            source=f"import:{source}",
            files=records,
            extra=meta,
        )


def _adopt(folder: Path, relative: str) -> FileRecord:
    """Hash a file in place; a symlink (an operator's copy of a hub cache is made
    of them) is replaced by a copy, so the model does not depend on its target."""
    path = folder / relative
    if path.is_symlink():
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, path)
    return _record(folder, relative)


def _copy_hashed(src: Path, dest_root: Path, relative: str) -> FileRecord:
    dest = dest_root / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dest.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
    return FileRecord(path=relative, size=size, sha256=digest.hexdigest())


# -- checking and removing ---------------------------------------------------------


def verify(store: Path, key: str) -> list[Problem]:
    """Check every file of the manifest (present, same size, same sha256) and
    report files the manifest does not list; [] when the install is sound."""
    model = require(store, key)
    problems: list[Problem] = []
    for record in model.files:
        path = model.folder / record.path
        if not path.is_file():
            problems.append(Problem(record.path, "missing", "not in the folder"))
            continue
        size = path.stat().st_size
        if size != record.size:
            problems.append(
                Problem(record.path, "size", f"{size} bytes, expected {record.size}")
            )
            continue
        digest = _sha256(path)
        if digest != record.sha256:
            problems.append(
                Problem(
                    record.path, "hash", f"sha256 {digest}, expected {record.sha256}"
                )
            )
    listed = {f.path for f in model.files}
    for extra in sorted(set(_model_files(model.folder)) - listed):
        problems.append(Problem(extra, "extra", "not in the manifest"))
    return problems


def remove(store: Path, key: str) -> None:
    """Delete the model and any unfinished download of it; nothing to delete is
    not an error, so removing twice is safe."""
    store = Path(store)
    folder = model_folder(store, key)
    with _key_lock(store, key):
        # The manifest goes first: a removal cut short leaves files, never a
        # model that claims files it lost.
        (folder / MANIFEST).unlink(missing_ok=True)
        for path in (folder, _partial_folder(store, key)):
            if path.exists():
                shutil.rmtree(path)


# -- shared machinery ----------------------------------------------------------------


@contextmanager
def _key_lock(store: Path, key: str) -> Iterator[None]:
    """One writer per key: two pulls into the same partial folder would corrupt it."""
    path = store / _LOCKS / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise StoreError(
            f"another process is pulling, importing or removing '{key}'; wait for it"
            " to finish"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _install(
    store: Path,
    key: str,
    partial: Path,
    *,
    revision: str,
    source: str,
    files: tuple[FileRecord, ...],
    extra: dict[str, Any],
) -> Installed:
    """Swap the assembled folder in for the old one, then write the manifest."""
    folder = model_folder(store, key)
    shutil.rmtree(partial / _BOOKKEEPING, ignore_errors=True)
    (partial / MANIFEST).unlink(missing_ok=True)
    trash: Path | None = None
    if folder.exists():
        trash = store / _TRASH / f"{key}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, trash)
    os.replace(partial, folder)
    _write_manifest(folder, revision, source, files, extra)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return _manifest_installed(store, key)


def _manifest_installed(store: Path, key: str) -> Installed:
    model = installed(store, key)
    assert model is not None, "the manifest was just written"
    return model


def _write_manifest(
    folder: Path,
    revision: str,
    source: str,
    files: tuple[FileRecord, ...],
    extra: dict[str, Any],
) -> None:
    payload = {
        "format": MANIFEST_FORMAT,
        "key": folder.name,
        "revision": revision,
        "source": source,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    }
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(payload, out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / MANIFEST)


def _manifest_field(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get(name)
    except (OSError, ValueError):
        return None


def _model_files(root: Path) -> Iterator[str]:
    """Relative "/" paths of the files under ``root``, without the manifest and
    huggingface_hub's bookkeeping."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d != _BOOKKEEPING]
        dirnames.sort()
        for name in sorted(filenames):
            if here == root and (name == MANIFEST or name.startswith(f".{MANIFEST}.")):
                continue
            yield (here / name).relative_to(root).as_posix()


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        here = Path(dirpath)
        if here != root and not any(here.iterdir()):
            here.rmdir()


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


def _against_hub(
    records: Sequence[FileRecord], listing: Mapping[str, Any], root: Path
) -> list[str]:
    """The files whose bytes are not what the hub lists: large files by their
    LFS sha256, small ones by their git blob id (sha1 of "blob <size>\\0" and
    the bytes), or, when the listing gives only a large file's blob id, by
    the id of its LFS pointer. What the hub does not say is not checked."""
    damaged = []
    for record in records:
        entry = listing.get(record.path)
        lfs_info = getattr(entry, "lfs", None)
        lfs = (
            lfs_info.get("sha256")
            if isinstance(lfs_info, Mapping)
            else getattr(lfs_info, "sha256", None)
        )
        blob = getattr(entry, "blob_id", None)
        if lfs:
            if lfs != record.sha256:
                damaged.append(record.path)
        elif blob and blob not in (
            _git_blob_id(root / record.path),
            _lfs_pointer_blob_id(record),
        ):
            damaged.append(record.path)
    return damaged


def _lfs_pointer_blob_id(record: FileRecord) -> str:
    """The git blob id of the Git LFS pointer naming this file's sha256 and
    size: what the hub's listing gives for a large file (its pointer is what
    git stores), so a match proves the bytes are the ones the hub named."""
    pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{record.sha256}\n"
        f"size {record.size}\n"
    ).encode()
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {len(pointer)}\0".encode() + pointer)
    return digest.hexdigest()


def _git_blob_id(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record(root: Path, relative: str) -> FileRecord:
    path = root / relative
    return FileRecord(path=relative, size=path.stat().st_size, sha256=_sha256(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _reserved(path: str) -> bool:
    """The store's own names (its manifest, the hub library's cache folder)
    cannot be model files: an install holding them would not verify."""
    parts = PurePosixPath(path).parts
    return path == MANIFEST or (bool(parts) and parts[0] == ".cache")


def _safe_relative(path: object) -> str:
    """A manifest path must stay inside the model's folder."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"bad file path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ValueError(f"file path {path!r} leaves the model's folder")
    return path
