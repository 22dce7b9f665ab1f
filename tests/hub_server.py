"""A local stand-in for a model hub, for tests that run the real
``huggingface_hub`` download code without a network.

It answers the requests that ``huggingface_hub.snapshot_download`` (2.4.0)
makes with ``local_dir`` and a custom ``endpoint`` (read from the library's
``_snapshot_download.py``, ``file_download.py``, ``hf_api.py`` and
``utils/_http.py``):

- ``GET /api/models/{repo_id}/revision/{revision}``: ``HfApi.model_info``
  (through ``repo_info``), JSON with ``id``, ``sha`` and ``siblings``; this is
  how a branch or tag becomes a commit sha.
- ``GET /api/models/{repo_id}/tree/{revision}?recursive=…&expand=…``:
  ``HfApi.list_repo_tree``, one page (no ``Link`` header), with ``type``,
  ``path``, ``size``, ``oid`` and, for large files, ``lfs``.
- ``HEAD /{repo_id}/resolve/{revision}/{path}``: the file's metadata.
  Small files answer 200 with ``X-Repo-Commit``, ``ETag`` (the git blob sha1)
  and ``Content-Length``. Large ("LFS") files answer 302 to a second server
  standing in for the CDN, with ``X-Linked-Etag`` (the sha256) and
  ``X-Linked-Size``; the library does not follow a redirect to another origin,
  reads the metadata from the 302 and downloads from the CDN without the
  ``Authorization`` header, as it does against the real hub.
- ``GET`` of those URLs: the bytes, with ``Range`` support (206 and
  ``Content-Range``) for the library's resume after a dropped connection.

No response carries ``X-Xet-Hash`` or a ``xetHash`` tree field, so the library
never takes its Xet path (``hf_xet``). Errors carry ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which the
library's ``hf_raise_for_status`` turns into its typed exceptions.

A repo added with ``private=True`` answers 401 ``RepoNotFound`` to a request
without ``Authorization``, as the hub does; when the server has a ``token``,
any other token is refused with 401 "Invalid credentials in Authorization
header".

Every request is recorded in ``.requests``, and switches make the next
requests fail (``fail_next``), drop the connection part-way through a body
(``drop_next``), arrive damaged (``corrupt_next``), go slowly (``slow``) or
stop part-way until released
(``hold``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.onnx", "*.gguf", "*.pt", "*.ckpt")
CHUNK = 16 * 1024


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file a large file's git blob holds."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
        f"size {size}\n"
    ).encode()


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content: what the hub sends as a small file's
    ETag and as ``oid`` in tree listings."""
    return hashlib.sha1(
        b"blob %d\0" % len(data) + data, usedforsecurity=False
    ).hexdigest()


def commit_sha_for(repo_id: str, files: Mapping[str, bytes], salt: str = "") -> str:
    """A stable 40-hex "commit" for a set of files (tests need not invent one)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(repo_id.encode() + salt.encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + git_blob_sha1(files[path]).encode())
    return digest.hexdigest()


@dataclass
class HubRequest:
    """One request as the server saw it."""

    server: str  # "hub" or "cdn"
    method: str
    path: str  # raw path, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    repo_id: str | None = None
    file: str | None = None  # the repo file this request is about, if any
    status: int = 0
    body_bytes: int = 0  # bytes of body actually written

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]


@dataclass
class _Repo:
    repo_id: str
    private: bool
    commits: dict[str, _Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass
class _Switch:
    """Applies to the next ``n`` requests that match."""

    n: int
    method: str | None
    file: str | None
    path_contains: str | None
    status: int = 500
    after: int | None = None  # for drops and holds: body bytes sent first

    def matches(self, request: HubRequest) -> bool:
        if self.n <= 0:
            return False
        if self.method is not None and request.method != self.method:
            return False
        if self.file is not None and request.file != self.file:
            return False
        if self.path_contains is not None and self.path_contains not in request.path:
            return False
        return True


class HubServer:
    """The fake hub on 127.0.0.1 (and its "CDN" on another port).

    Use as a context manager, or call ``start()`` and ``close()``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        lfs_patterns: Iterable[str] = LFS_PATTERNS,
    ) -> None:
        self.token = token  # what private repos require as "Bearer <token>"
        self.lfs_patterns = tuple(lfs_patterns)
        self.slow: float = 0.0  # seconds to wait before each 16 KiB of a body
        self._repos: dict[str, _Repo] = {}
        # sha256 -> (repo, path, bytes), what the CDN serves
        self._blobs: dict[str, tuple[str, str, bytes]] = {}
        self._requests: list[HubRequest] = []
        self._fails: list[_Switch] = []
        self._drops: list[_Switch] = []
        self._corrupts: list[_Switch] = []
        self._holds: list[_Switch] = []
        self._lock = threading.Lock()
        self.held = threading.Event()  # set when a held body has stopped
        self._release = threading.Event()
        self._hub: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> HubServer:
        handler = _make_handler(self)
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        for server in (self._hub, self._cdn):
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        self._release.set()
        for server in (self._hub, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._hub is not None, "start the server first"
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        assert self._cdn is not None, "start the server first"
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    # -- content -----------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        revisions: Mapping[str, str] | Iterable[str] | None = None,
        *,
        private: bool = False,
    ) -> str:
        """Add a commit holding ``files`` and point the given refs at it.

        ``revisions`` maps ref names (branches, tags) to the commit's sha, or
        lists ref names (the sha is then made up from the content). Called
        again for the same repo, it adds another commit: that is how a test
        moves a branch. Returns the commit sha.
        """
        if revisions is None:
            revisions = ["main"]
        if isinstance(revisions, Mapping):
            shas = set(revisions.values())
            if len(shas) != 1:
                raise ValueError(
                    "one call adds one commit: give every ref the same sha"
                )
            sha = shas.pop()
            names = list(revisions)
        else:
            names = list(revisions)
            sha = commit_sha_for(repo_id, files, salt=str(len(self._repos)))
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id, private))
            repo.private = private
            repo.commits[sha] = _Commit(sha, dict(files))
            for name in names:
                repo.refs[name] = sha
            for path, data in files.items():
                if self.is_lfs(path):
                    self._blobs[hashlib.sha256(data).hexdigest()] = (
                        repo_id,
                        path,
                        data,
                    )
        return sha

    def is_lfs(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.lfs_patterns)

    # -- switches ------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        method: str | None = None,
        file: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` and no body."""
        with self._lock:
            self._fails.append(_Switch(n, method, file, path_contains, status=status))

    def drop_next(
        self, n: int = 1, *, file: str | None = None, after: int | None = None
    ) -> None:
        """Close the connection after ``after`` body bytes (half by default) of
        the next ``n`` downloads of ``file`` (any file when None)."""
        with self._lock:
            self._drops.append(_Switch(n, "GET", file, None, after=after))

    def corrupt_next(self, n: int = 1, *, file: str | None = None) -> None:
        """Flip one byte in the middle of the next ``n`` downloads of ``file``
        (the headers still describe the true file): damage in transit."""
        with self._lock:
            self._corrupts.append(_Switch(n, "GET", file, None))

    def hold(self, file: str, *, after: int) -> None:
        """Stop the next download of ``file`` after ``after`` bytes, set
        ``held``, and carry on only once ``release()`` is called."""
        with self._lock:
            self._holds.append(_Switch(1, "GET", file, None, after=after))

    def release(self) -> None:
        self._release.set()

    # -- the log -------------------------------------------------------------

    @property
    def requests(self) -> list[HubRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def downloads(self) -> list[str]:
        """The repo files whose bytes were requested (GETs with a body),
        in order; a file appears once per attempt."""
        return [
            r.file
            for r in self.requests
            if r.method == "GET" and r.file is not None and r.status in (200, 206)
        ]

    # -- used by the handler ---------------------------------------------------

    def _record(self, request: HubRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take(self, switches: list[_Switch], request: HubRequest) -> _Switch | None:
        with self._lock:
            for switch in switches:
                if switch.matches(request):
                    switch.n -= 1
                    return switch
        return None


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the client pools connections; every answer has a
        # Content-Length so the client knows where a body ends.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is `hub.requests`

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer()

        # -- routing ----------------------------------------------------------

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            is_cdn = hub._cdn is not None and self.server is hub._cdn
            request = HubRequest(
                server="cdn" if is_cdn else "hub",
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            hub._record(request)
            self._route(request, is_cdn)

        def _route(self, request: HubRequest, is_cdn: bool) -> None:
            path = request.path
            if is_cdn:
                if path.startswith("/_blobs/"):
                    self._blob(request, path.removeprefix("/_blobs/"))
                else:
                    self._error(request, 404, None)
                return
            if path.startswith("/api/models/"):
                self._api(request, path.removeprefix("/api/models/"))
            elif "/resolve/" in path:
                repo_part, _, rest = path.partition("/resolve/")
                revision, _, file = rest.partition("/")
                self._resolve(
                    request, unquote(repo_part[1:]), unquote(revision), unquote(file)
                )
            else:
                self._error(request, 404, None)

        def _repo(self, request: HubRequest, repo_id: str) -> _Repo | None:
            request.repo_id = repo_id
            if (failure := hub._take(hub._fails, request)) is not None:
                self._error(request, failure.status, None)
                return None
            repo = hub._repos.get(repo_id)
            given = request.authorization
            if (
                given is not None
                and hub.token is not None
                and given != f"Bearer {hub.token}"
            ):
                self._error(
                    request,
                    401,
                    None,
                    {"X-Error-Message": "Invalid credentials in Authorization header"},
                )
                return None
            if repo is None:
                self._error(request, 404, "RepoNotFound")
                return None
            if repo.private and given is None:
                # The hub answers a private repo without a token as it
                # answers a missing one.
                self._error(request, 401, "RepoNotFound")
                return None
            return repo

        def _commit(
            self, request: HubRequest, repo: _Repo, revision: str
        ) -> _Commit | None:
            sha = repo.refs.get(revision, revision)
            commit = repo.commits.get(sha)
            if commit is None:
                self._error(request, 404, "RevisionNotFound")
            return commit

        # -- /api/models/... ----------------------------------------------------

        def _api(self, request: HubRequest, rest: str) -> None:
            for kind in ("/revision/", "/tree/"):
                if kind in rest:
                    repo_id, _, tail = rest.partition(kind)
                    break
            else:
                repo_id, kind, tail = rest, "/revision/", quote("main")
            if request.method != "GET":
                self._error(request, 405, None)
                return
            repo = self._repo(request, unquote(repo_id))
            if repo is None:
                return
            revision, _, folder = tail.partition("/")
            commit = self._commit(request, repo, unquote(revision))
            if commit is None:
                return
            if kind == "/revision/":
                self._json(request, self._model_info(repo, commit))
            else:
                recursive = (
                    request.query.get("recursive", ["false"])[0].lower() == "true"
                )
                self._json(request, self._tree(commit, unquote(folder), recursive))

        def _model_info(self, repo: _Repo, commit: _Commit) -> dict[str, Any]:
            return {
                "_id": commit.sha[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": commit.sha,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }

        def _tree(
            self, commit: _Commit, folder: str, recursive: bool
        ) -> list[dict[str, Any]]:
            prefix = f"{folder}/" if folder else ""
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for path in sorted(commit.files):
                if not path.startswith(prefix):
                    continue
                inner = path[len(prefix) :]
                parents = inner.split("/")[:-1]
                if parents and not recursive:
                    folders.add(prefix + parents[0])
                    continue
                for depth in range(1, len(parents) + 1):
                    folders.add(prefix + "/".join(parents[:depth]))
                data = commit.files[path]
                entry: dict[str, Any] = {
                    "type": "file",
                    "path": path,
                    "size": len(data),
                    "oid": git_blob_sha1(data),
                }
                if hub.is_lfs(path):
                    sha256 = hashlib.sha256(data).hexdigest()
                    # A stand-in for the LFS pointer file git stores: the
                    # client only uses its size and the oid it hashes to.
                    pointer = lfs_pointer(sha256, len(data))
                    entry["oid"] = git_blob_sha1(pointer)
                    entry["lfs"] = {
                        "oid": sha256,
                        "size": len(data),
                        "pointerSize": len(pointer),
                    }
                entries.append(entry)
            directories = [
                {
                    "type": "directory",
                    "path": f,
                    "oid": hashlib.sha1(f.encode(), usedforsecurity=False).hexdigest(),
                }
                for f in sorted(folders)
            ]
            return directories + entries

        # -- /{repo}/resolve/{revision}/{path} and the CDN -------------------------

        def _resolve(
            self, request: HubRequest, repo_id: str, revision: str, file: str
        ) -> None:
            request.file = file
            repo = self._repo(request, repo_id)
            if repo is None:
                return
            commit = self._commit(request, repo, revision)
            if commit is None:
                return
            data = commit.files.get(file)
            if data is None:
                self._error(
                    request, 404, "EntryNotFound", {"X-Repo-Commit": commit.sha}
                )
                return
            headers = {"X-Repo-Commit": commit.sha}
            if hub.is_lfs(file):
                sha256 = hashlib.sha256(data).hexdigest()
                headers |= {
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{git_blob_sha1(data)}"',
                    "Location": f"{hub.cdn_url}/_blobs/{sha256}",
                }
                self._status(request, 302, headers | {"Content-Length": "0"})
                return
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
            self._body(request, data, headers)

        def _blob(self, request: HubRequest, sha256: str) -> None:
            found = hub._blobs.get(sha256)
            if found is None:
                self._error(request, 404, None)
                return
            request.repo_id, request.file, data = found
            if (failure := hub._take(hub._fails, request)) is not None:
                self._error(request, failure.status, None)
                return
            self._body(request, data, {"ETag": f'"{sha256}"'})

        def _body(
            self, request: HubRequest, data: bytes, headers: dict[str, str]
        ) -> None:
            start, end = 0, len(data) - 1
            status = 200
            wanted = request.range
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted.removeprefix("bytes=").partition("-")
                start = int(first)
                end = int(last) if last else len(data) - 1
                if start >= len(data):
                    self._error(
                        request, 416, None, {"Content-Range": f"bytes */{len(data)}"}
                    )
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            body = data[start : end + 1]
            headers |= {"Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
            self._status(request, status, headers)
            if request.method == "HEAD":
                return
            if body and hub._take(hub._corrupts, request) is not None:
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
            drop = hub._take(hub._drops, request)
            hold = hub._take(hub._holds, request)
            stop = (
                len(body)
                if drop is None
                else (drop.after if drop.after is not None else len(body) // 2)
            )
            sent = 0
            try:
                while sent < stop:
                    if (
                        hold is not None
                        and hold.after is not None
                        and sent >= hold.after
                    ):
                        hub.held.set()
                        hub._release.wait(timeout=60)
                        hold = None
                    limit = stop
                    if hold is not None and hold.after is not None:
                        limit = min(stop, hold.after)
                    piece = body[sent : min(limit, sent + CHUNK)]
                    if hub.slow:
                        time.sleep(hub.slow)
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    request.body_bytes = sent
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            if drop is not None:
                # Promised Content-Length, sent less, hung up: what a proxy
                # timeout or a flaky link looks like to the client.
                self.close_connection = True

        # -- plumbing ------------------------------------------------------------

        def _json(self, request: HubRequest, payload: object) -> None:
            body = json.dumps(payload).encode()
            self._status(
                request,
                200,
                {"Content-Type": "application/json", "Content-Length": str(len(body))},
            )
            self.wfile.write(body)
            request.body_bytes = len(body)

        def _error(
            self,
            request: HubRequest,
            status: int,
            code: str | None,
            extra: dict[str, str] | None = None,
        ) -> None:
            body = json.dumps({"error": code or f"HTTP {status}"}).encode()
            headers = {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            }
            if code is not None:
                headers["X-Error-Code"] = code
            headers |= extra or {}
            self._status(request, status, headers)
            if request.method != "HEAD":
                self.wfile.write(body)

        def _status(
            self, request: HubRequest, status: int, headers: dict[str, str]
        ) -> None:
            request.status = status
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

    return Handler


@contextmanager
def running_hub(**kwargs: Any) -> Iterator[HubServer]:
    with HubServer(**kwargs) as hub:
        yield hub
