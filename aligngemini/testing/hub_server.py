"""A loopback stand-in for the Hugging Face Hub, for tests that drive the real client.

Implements the routes ``huggingface_hub`` uses to create a repo, commit files (regular,
base64 uploads), tag and branch commits, list refs and trees, report model info and
serve files (``resolve``, with the ``ETag``/``X-Repo-Commit`` headers the download cache
relies on). Point ``HF_ENDPOINT`` (or ``endpoint=``) at :attr:`HubServer.url`.

Repositories live in memory: each commit is a full snapshot ``{path: bytes}``, so tags
and shas keep pointing at exactly what was committed. :meth:`HubServer.tamper` rewrites a
file in place to play a compromised mirror.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/([a-z-]+)(?:/([^/]+))?(/.*)?)?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], parent: str | None, message: str) -> str:
        digest = hashlib.sha1(json.dumps([parent, message, sorted((p, _git_blob_sha(d)) for p, d in files.items())]).encode())
        sha = digest.hexdigest()
        self.commits[sha] = files
        return sha

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        for table in (self.branches, self.tags):
            if revision in table:
                return table[revision]
        for prefix, table in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix) and revision[len(prefix):] in table:
                return table[revision[len(prefix):]]
        return revision if revision in self.commits else None


class HubState:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self.lock = threading.Lock()

    def create(self, repo_id: str) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            repo = Repo()
            repo.branches["main"] = repo.commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                                                None, "initial commit")
            self.repos[repo_id] = repo
            return True


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    # --- plumbing ----------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload, error_code: str | None = None):
        headers = {"Content-Type": "application/json"}
        if error_code:
            headers["X-Error-Code"] = error_code
            headers["X-Error-Message"] = str(payload.get("error", ""))
        self._send(status, json.dumps(payload).encode(), headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorised(self) -> bool:
        if self.headers.get("Authorization", "").startswith("Bearer "):
            return True
        self._json(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.server.state.repos.get(repo_id)
        if repo is None:
            self._json(404, {"error": f"Repository {repo_id} not found"}, "RepoNotFound")
        return repo

    def _commit_of(self, repo: Repo, revision: str) -> str | None:
        sha = repo.resolve(revision)
        if sha is None:
            self._json(404, {"error": f"Invalid rev id: {unquote(revision)}"}, "RevisionNotFound")
        return sha

    # --- routes --------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head: bool = False):
        self.server.state.requests.append(("HEAD" if head else "GET", self.path))
        url = urlparse(self.path)
        if match := _RESOLVE.match(url.path):
            return self._resolve(*match.groups(), head=head)
        match = _API.match(url.path)
        if not match:
            return self._json(404, {"error": f"no route {url.path}"})
        _, repo_id, action, revision, rest = match.groups()
        repo = self._repo(repo_id)
        if repo is None:
            return None
        if action is None or action == "revision":
            return self._model_info(repo_id, repo, revision or "main")
        if action == "refs":
            refs = {kind: [{"name": n, "ref": f"refs/{prefix}/{n}", "targetCommit": sha} for n, sha in table.items()]
                    for kind, prefix, table in (("branches", "heads", repo.branches), ("tags", "tags", repo.tags))}
            return self._json(200, {**refs, "converts": [], "pullRequests": []})
        if action == "tree":
            return self._tree(repo, revision or "main", unquote((rest or "").lstrip("/")), parse_qs(url.query))
        return self._json(404, {"error": f"no route {url.path}"})

    def do_POST(self):
        self.server.state.requests.append(("POST", self.path))
        url = urlparse(self.path)
        body = self._body()
        if url.path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if url.path == "/api/repos/create":
            if not self._authorised():
                return None
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if not self.server.state.create(repo_id):
                return self._json(409, {"error": "You already created this model repo", "url": f"{self.server.url}/{repo_id}"})
            return self._json(200, {"url": f"{self.server.url}/{repo_id}", "name": repo_id, "id": repo_id})
        match = _API.match(url.path)
        if not match or not self._authorised():
            return None if match else self._json(404, {"error": f"no route {url.path}"})
        _, repo_id, action, revision, _ = match.groups()
        repo = self._repo(repo_id)
        if repo is None:
            return None
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if action == "commit":
            return self._commit(repo_id, repo, unquote(revision or "main"), body)
        if action in ("tag", "branch"):
            return self._create_ref(repo, action, unquote(revision or "main"), json.loads(body or b"{}"))
        return self._json(404, {"error": f"no route {url.path}"})

    # --- handlers ------------------------------------------------------------------------
    def _validate_yaml(self, payload: dict):
        text = payload.get("content", "")
        if text.startswith("---"):
            try:
                yaml.safe_load(text.split("---", 2)[1])
            except yaml.YAMLError as err:
                return self._json(400, {"errors": [{"message": str(err)}], "warnings": []})
        return self._json(200, {"errors": [], "warnings": []})

    def _commit(self, repo_id: str, repo: Repo, branch: str, body: bytes):
        with self.server.state.lock:
            parent = repo.branches.get(branch)
            if parent is None:
                return self._json(404, {"error": f"Invalid rev id: {branch}"}, "RevisionNotFound")
            files, message = dict(repo.commits[parent]), ""
            for line in body.splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    message = value.get("summary", "")
                    if value.get("parentCommit") not in (None, parent):
                        return self._json(412, {"error": "A commit has happened since. Please refresh and try again."})
                elif key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key in ("deletedFile", "deletedFolder"):
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if p != value["path"] and not p.startswith(prefix)}
                else:
                    return self._json(400, {"error": f"this test hub does not support {key!r} operations"})
            sha = repo.commit(files, parent, message)
            repo.branches[branch] = sha
        return self._json(200, {"success": True, "commitOid": sha, "commitUrl": f"{self.server.url}/{repo_id}/commit/{sha}",
                                "pullRequestUrl": None})

    def _create_ref(self, repo: Repo, kind: str, revision: str, payload: dict):
        with self.server.state.lock:
            if kind == "tag":
                name, table, start = payload["tag"], repo.tags, revision
            else:
                name, table, start = revision, repo.branches, payload.get("startingPoint") or "main"
            if name in table:
                return self._json(409, {"error": f"{kind.capitalize()} {name} already exists"})
            sha = self._commit_of(repo, start)
            if sha is None:
                return None
            table[name] = sha
        return self._json(200, {})

    def _model_info(self, repo_id: str, repo: Repo, revision: str):
        sha = self._commit_of(repo, revision)
        if sha is None:
            return None
        files = repo.commits[sha]
        return self._json(200, {"id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
                                "private": False, "disabled": False, "gated": False, "tags": [], "downloads": 0,
                                "likes": 0, "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())],
                                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z"})

    def _tree(self, repo: Repo, revision: str, folder: str, query: dict):
        sha = self._commit_of(repo, revision)
        if sha is None:
            return None
        recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries: dict[str, dict] = {}
        for path, data in sorted(repo.commits[sha].items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                sub = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(sub, {"type": "directory", "oid": hashlib.sha1(sub.encode()).hexdigest(),
                                             "size": 0, "path": sub})
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "oid": _git_blob_sha(data), "size": len(data), "path": path}
        if folder and not entries:
            return self._json(404, {"error": f"{folder} does not exist on {revision}"}, "EntryNotFound")
        return self._json(200, list(entries.values()))

    def _resolve(self, repo_id: str, revision: str, path: str, head: bool):
        repo = self._repo(repo_id)
        sha = repo and self._commit_of(repo, revision)
        if sha is None:
            return None
        data = repo.commits[sha].get(unquote(path))
        if data is None:
            return self._json(404, {"error": f"Entry not found: {path}"}, "EntryNotFound")
        headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Repo-Commit": sha,
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "none"}
        self._send(200, data, headers, head=head)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    url: str


class HubServer:
    """``with HubServer() as hub: HfApi(endpoint=hub.url)...``; writes need any bearer token."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._server = _Server((host, port), _Handler)
        self._server.state = HubState()
        self._server.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def state(self) -> HubState:
        return self._server.state

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def tamper(self, repo_id: str, revision: str, path: str, data: bytes) -> None:
        """Replace a committed file's bytes in place (the sha stays): a compromised mirror."""
        repo = self.state.repos[repo_id]
        repo.commits[repo.resolve(revision)][path] = data
