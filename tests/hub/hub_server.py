"""A loopback Hugging Face Hub for the tests: the few endpoints huggingface_hub 2.x calls to create a repo, commit
regular (non-LFS) files and download them, served from memory on 127.0.0.1.

Only what the client needs is implemented:

=========================================================  =============================================
``POST /api/repos/create``                                  create a model repo (409 when it exists)
``GET  /api/models/{repo_id}``                              repo info (``create_repo`` asks it after a 403)
``POST /api/validate-yaml``                                 README front matter check before a commit
``POST /api/models/{repo_id}/preupload/{revision}``         every file is a regular upload, never LFS
``POST /api/models/{repo_id}/commit/{revision}``            NDJSON commit, base64 file contents
``POST /api/models/{repo_id}/branch/{branch}``              create a branch from ``main``
``HEAD|GET /{repo_id}/resolve/{revision}/{path}``           file metadata and download
=========================================================  =============================================

Errors carry the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``,
``GatedRepo``) that huggingface_hub turns into its typed exceptions. The server binds 127.0.0.1 only, answers at
most ``max_requests`` requests, and stops itself after ``lifetime_s`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["LoopbackHub"]

_MAX_BODY = 64 * 1024 * 1024
_API_REPO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(preupload|commit|branch|revision)/([^/]+))?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    private: bool = False
    gated: bool = False
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit id
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit id -> {path: content}
    num_prs: int = 0


class LoopbackHub:
    """An in-memory Hub on ``http://127.0.0.1:<ephemeral port>``; use as a context manager.

    Args:
        allow_create: When False, ``create_repo`` is refused with 403 (as for a namespace the token cannot write to).
        fail_status: When set, every request is answered with this HTTP status (e.g. 500).
        max_requests: Requests answered before the server refuses (503) and stops.
        lifetime_s: The server stops itself after this many seconds.
    """

    def __init__(self, *, allow_create: bool = True, fail_status: int | None = None, max_requests: int = 400,
                 lifetime_s: float = 120.0) -> None:
        self.allow_create = allow_create
        self.fail_status = fail_status
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.repos: dict[str, _Repo] = {}
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.auth_headers: list[str] = []  # every Authorization header received
        self.commits: list[dict] = []  # (repo_id, revision, header, paths) of every commit received
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> LoopbackHub:
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Timer(self.lifetime_s, self.stop)
        watchdog.daemon = True
        self._threads = [serve, watchdog]
        serve.start()
        watchdog.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for t in self._threads:
            if isinstance(t, threading.Timer):
                t.cancel()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the loopback Hub is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- test helpers -----------------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes] | None = None, *, gated: bool = False) -> None:
        """Create a repo directly (no HTTP), optionally with an initial commit of ``files``."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo(gated=gated))
            self._commit(repo, "main", dict(files or {}), "initial commit")

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The tree of ``repo_id`` at a branch, PR ref or commit id."""
        repo = self.repos[repo_id]
        return dict(repo.trees[repo.refs.get(revision, revision)])

    # ---- internals (called with the lock held) ----------------------------------------------------------------
    def _commit(self, repo: _Repo, ref: str, changes: dict[str, bytes], message: str) -> str:
        parent = repo.refs.get(ref) or repo.refs.get("main")
        tree = dict(repo.trees.get(parent, {})) if parent else {}
        tree.update(changes)
        digest = hashlib.sha1(f"{parent}:{len(repo.trees)}:{message}".encode())
        for path in sorted(tree):
            digest.update(path.encode() + _git_blob_sha(tree[path]).encode())
        oid = digest.hexdigest()
        repo.trees[oid] = tree
        repo.refs[ref] = oid
        return oid


class _Handler(BaseHTTPRequestHandler):
    state: LoopbackHub
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a client may stall on a socket read

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # ---- responses -----------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json", head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        with self.state._lock:
            self.state.log.append((self.command, self.path, status))

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False,
               headers: dict[str, str] | None = None) -> None:
        h = {"X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), h, head=head)

    # ---- dispatch ------------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        hub = self.state
        with hub._lock:
            over = len(hub.log) >= hub.max_requests
            auth = self.headers.get("authorization")
            if auth:
                hub.auth_headers.append(auth)
        if over:
            self.close_connection = True
            self._error(503, "loopback Hub request limit reached")
            threading.Thread(target=hub.stop, daemon=True).start()
            return
        body = b""
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or -1)
            if length < 0 or length > _MAX_BODY:
                self.close_connection = True
                return self._error(411 if length < 0 else 413, "a body with a Content-Length is required")
            body = self.rfile.read(length)
        if hub.fail_status is not None:
            return self._error(hub.fail_status, "Internal Error - the loopback Hub was told to fail")
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if self.command == "POST" and path == "/api/repos/create":
            return self._create_repo(body)
        if self.command == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(body)
        m = _API_REPO.match(path)
        if m:
            repo_id, action, arg = m.group(1), m.group(2), unquote(m.group(3) or "")
            if self.command == "GET" and action in (None, "revision"):
                return self._repo_info(repo_id, arg or "main")
            if self.command == "POST" and action == "preupload":
                return self._preupload(repo_id, body)
            if self.command == "POST" and action == "commit":
                return self._commit(repo_id, arg, body, create_pr=query.get("create_pr") == ["1"])
            if self.command == "POST" and action == "branch":
                return self._branch(repo_id, arg, body)
        m = _RESOLVE.match(path)
        if m and self.command in ("GET", "HEAD"):
            return self._resolve(m.group(1), unquote(m.group(2)), unquote(m.group(3)), head=self.command == "HEAD")
        self._error(404, f"no loopback route for {self.command} {path}")

    # ---- endpoints -----------------------------------------------------------------------------------------------
    def _need_auth(self) -> bool:
        if not (self.headers.get("authorization") or "").startswith("Bearer "):
            self._error(401, "Invalid username or password.")
            return False
        return True

    def _create_repo(self, body: bytes) -> None:
        if not self._need_auth():
            return
        hub = self.state
        payload = json.loads(body)
        repo_id = f"{payload.get('organization') or 'loopback-user'}/{payload['name']}"
        if not hub.allow_create:
            return self._error(403, f"You don't have the rights to create a model under the namespace "
                                    f"\"{repo_id.split('/')[0]}\"")
        with hub._lock:
            exists = repo_id in hub.repos
            if not exists:
                repo = hub.repos[repo_id] = _Repo(private=payload.get("visibility") == "private"
                                                  or bool(payload.get("private")))
                hub._commit(repo, "main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                            "initial commit")
        url = f"{hub.url}/{repo_id}"
        if exists:
            return self._json(409, {"error": "You already created this model repo", "url": url})
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, body: bytes) -> None:
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as e:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {e}"}]})
        if not isinstance(meta, dict) or not isinstance(meta.get("model-index", []), list):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping with a list model-index"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _repo_info(self, repo_id: str, revision: str) -> None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        sha = repo.refs.get(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                         "siblings": [{"rfilename": p} for p in sorted(repo.trees[sha])]})

    def _preupload(self, repo_id: str, body: bytes) -> None:
        if not self._need_auth():
            return
        if repo_id not in self.state.repos:
            return self._error(404, "Repository not found", "RepoNotFound")
        files = json.loads(body)["files"]
        self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                   for f in files]})

    def _commit(self, repo_id: str, revision: str, body: bytes, create_pr: bool) -> None:
        if not self._need_auth():
            return
        hub = self.state
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, "the commit payload must start with a header line")
        changes: dict[str, bytes] = {}
        for line in lines[1:]:
            if line["key"] != "file" or line["value"].get("encoding") != "base64":
                return self._error(400, f"unsupported commit operation {line['key']!r} (the loopback Hub takes "
                                        "regular base64 files only)")
            changes[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        with hub._lock:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            if revision not in repo.refs:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            summary = lines[0]["value"].get("summary", "")
            pr_url = None
            if create_pr:
                repo.num_prs += 1
                ref = f"refs/pr/{repo.num_prs}"
                repo.refs[ref] = repo.refs[revision]
                pr_url = f"{hub.url}/{repo_id}/discussions/{repo.num_prs}"
            else:
                ref = revision
            oid = hub._commit(repo, ref, changes, summary)
            hub.commits.append({"repo_id": repo_id, "ref": ref, "summary": summary, "paths": sorted(changes)})
        self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": pr_url})

    def _branch(self, repo_id: str, branch: str, body: bytes) -> None:
        if not self._need_auth():
            return
        hub = self.state
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        with hub._lock:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            if branch in repo.refs:
                return self._error(409, "Reference already exists")
            repo.refs[branch] = repo.refs.get(start, start)
        self._json(200, {})

    def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound", head=head)
        if repo.gated:
            return self._error(403, f"Access to model {repo_id} is restricted. You must have access to it and be "
                                    "authenticated to access it. Please log in.", "GatedRepo", head=head)
        sha = repo.refs.get(revision, revision)
        if sha not in repo.trees:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound", head=head)
        data = repo.trees[sha].get(path)
        headers = {"X-Repo-Commit": sha}
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound", head=head, headers=headers)
        headers["ETag"] = f'"{_git_blob_sha(data)}"'
        self._send(200, data, headers, content_type="application/octet-stream", head=head)
