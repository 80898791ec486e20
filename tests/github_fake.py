"""A local fake of the GitHub REST API for the comment/client tests.

A real HTTP server (127.0.0.1, ephemeral port, own thread) that stores issue comments,
paginates with Link headers, checks the token, records every request and can be
scripted to fail the way GitHub does.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

FAKE_TOKEN = "ghs_FAKEtoken0123456789abcdefSECRET"
BOT_LOGIN = "github-actions[bot]"
DOCS = "https://docs.github.com/rest"
FAULT_KINDS = ("fork", "primary_rate_limit", "secondary_rate_limit", "server_error",
               "store_then_fail", "store_then_disconnect")


@dataclass
class Recorded:
    method: str
    path: str  # without the API prefix, with the query string
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    kind: str
    times: int = 1
    status: int | None = None
    retry_after: int | None = None
    reset: int | None = None


@dataclass
class FakeGitHub:
    """State of the fake; `url` is the API base to hand to the client."""

    token: str = FAKE_TOKEN
    prefix: str = "/api/v3"  # like GHES; "" behaves like api.github.com
    login: str = BOT_LOGIN  # identity of the token: author of created comments
    user_endpoint: bool = False  # GET /user allowed? (not for Actions installation tokens)
    page_cap: int = 100  # largest per_page honoured; GitHub's is 100
    body_limit: int = 65536
    comments: dict[tuple[str, int], list[dict]] = field(default_factory=dict)
    pulls: dict[tuple[str, int], str] = field(default_factory=dict)  # (repo, number) -> head sha
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def start(self) -> FakeGitHub:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- test helpers ------------------------------------------------------------------

    def add_comment(self, repo: str, issue: int, body: str, login: str = BOT_LOGIN) -> dict:
        with self.lock:
            return self._store(repo, issue, body, login)

    def issue_comments(self, repo: str, issue: int) -> list[dict]:
        with self.lock:
            return [dict(c) for c in self.comments.get((repo, issue), [])]

    def fail(self, method: str, path: str, kind: str, *, times: int = 1, status: int | None = None,
             retry_after: int | None = None, reset: int | None = None) -> None:
        """Script the next `times` matching requests (path is a regex, full match) to fail."""
        assert kind in FAULT_KINDS, kind
        self.faults.append(Fault(method.upper(), re.compile(path), kind, times, status,
                                 retry_after, reset))

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method.upper()]

    # -- internals ---------------------------------------------------------------------

    def _store(self, repo: str, issue: int, body: str, login: str) -> dict:
        self.next_id += 1
        owner = repo.split("/")[0]
        comment = {
            "id": self.next_id, "node_id": f"IC_{self.next_id}", "body": body,
            "url": f"{self.url}/repos/{repo}/issues/comments/{self.next_id}",
            "html_url": f"https://github.com/{repo}/pull/{issue}#issuecomment-{self.next_id}",
            "issue_url": f"{self.url}/repos/{repo}/issues/{issue}",
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
            "author_association": "NONE" if login != owner else "OWNER",
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        }
        self.comments.setdefault((repo, issue), []).append(comment)
        return comment

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.path.fullmatch(path):
                    fault.times -= 1
                    return fault
        return None


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(_GitHubHandler):
        pass

    Handler.fake = fake
    return Handler


class _GitHubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between requests
    fake: FakeGitHub

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -- plumbing ----------------------------------------------------------------------

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ratelimit-limit", "5000")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "x-ratelimit-remaining" not in (headers or {}):
            self.send_header("x-ratelimit-remaining", "4999")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None,
               **extra: Any) -> None:
        self._send(status, {"message": message, "documentation_url": DOCS,
                            "status": str(status), **extra}, headers)

    def _handle(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        split = urlsplit(self.path)
        if not split.path.startswith(fake.prefix + "/"):
            return self._error(404, "Not Found")
        path = split.path[len(fake.prefix):]
        with fake.lock:
            fake.requests.append(Recorded(method, path + (f"?{split.query}" if split.query else ""),
                                          dict(self.headers.items()), body))
        fault = fake._take_fault(method, path)
        if fault and fault.kind not in ("store_then_fail", "store_then_disconnect"):
            return self._fault(fault)
        if self.headers.get("Authorization") not in (f"Bearer {fake.token}", f"token {fake.token}"):
            return self._error(401, "Bad credentials")
        status, payload, headers = self._route(method, path, parse_qs(split.query), body)
        if fault and fault.kind == "store_then_fail":
            return self._send(fault.status or 502, "<html><body>502 Bad Gateway</body></html>")
        if fault and fault.kind == "store_then_disconnect":
            self.close_connection = True
            return None
        self._send(status, payload, headers)

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "fork":
            return self._error(403, "Resource not accessible by integration")
        if fault.kind == "primary_rate_limit":
            return self._error(fault.status or 403,
                               "API rate limit exceeded for installation ID 1.",
                               {"x-ratelimit-remaining": "0",
                                "x-ratelimit-reset": str(fault.reset or 0)})
        if fault.kind == "secondary_rate_limit":
            headers = {} if fault.retry_after is None else {"retry-after": str(fault.retry_after)}
            return self._error(fault.status or 429, "You have exceeded a secondary rate limit. "
                               "Please wait a few minutes before you try again.", headers)
        return self._error(fault.status or 500, "Server Error")

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        fake = self.fake
        if path == "/user" and method == "GET":
            if not fake.user_endpoint:
                return 403, {"message": "Resource not accessible by integration",
                             "documentation_url": DOCS, "status": "403"}, {}
            return 200, {"login": fake.login, "id": 1, "type": "User"}, {}
        match = re.fullmatch(r"/repos/([\w.-]+/[\w.-]+)/pulls/(\d+)", path)
        if match and method == "GET":
            head = fake.pulls.get((match.group(1), int(match.group(2))))
            if head is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}
            return 200, {"number": int(match.group(2)), "state": "open", "head": {"sha": head}}, {}
        match = re.fullmatch(r"/repos/([\w.-]+/[\w.-]+)/issues/(\d+)/comments", path)
        if match and method == "GET":
            return self._list(path, match.group(1), int(match.group(2)), query)
        if match and method == "POST":
            problem = self._check_body(body)
            if problem:
                return problem
            with fake.lock:
                return 201, fake._store(match.group(1), int(match.group(2)), body["body"],
                                        fake.login), {}
        match = re.fullmatch(r"/repos/([\w.-]+/[\w.-]+)/issues/comments/(\d+)", path)
        if match and method == "PATCH":
            problem = self._check_body(body)
            if problem:
                return problem
            with fake.lock:
                for (repo, _), comments in fake.comments.items():
                    for comment in comments:
                        if repo == match.group(1) and comment["id"] == int(match.group(2)):
                            if comment["user"]["login"] != fake.login:
                                return 403, {"message": "Must have admin rights to Repository."}, {}
                            comment["body"] = body["body"]
                            comment["updated_at"] = "2024-01-02T00:00:00Z"
                            return 200, dict(comment), {}
        return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}

    def _check_body(self, body: Any) -> tuple[int, Any, dict[str, str]] | None:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return 422, {"message": "Invalid request.\n\n\"body\" wasn't supplied."}, {}
        if len(body["body"]) > self.fake.body_limit:
            return 422, {"message": "Validation Failed", "documentation_url": DOCS, "status": "422",
                         "errors": [{"resource": "IssueComment", "code": "custom", "field": "body",
                                     "message": f"Body is too long (maximum is "
                                                f"{self.fake.body_limit} characters)"}]}, {}
        return None

    def _list(self, path: str, repo: str, issue: int,
              query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        fake = self.fake
        per_page = min(int(query.get("per_page", ["30"])[0]), fake.page_cap, 100)
        page = max(int(query.get("page", ["1"])[0]), 1)
        with fake.lock:
            items = [dict(c) for c in fake.comments.get((repo, issue), [])]
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = {"prev": page - 1, "next": page + 1, "first": 1, "last": last}
        shown = {"next", "last"} if page < last else set()
        shown |= {"prev", "first"} if page > 1 else set()
        link = ", ".join(f'<{fake.url}{path}?{urlencode({"per_page": per_page, "page": n})}>; '
                         f'rel="{rel}"' for rel, n in links.items() if rel in shown)
        return 200, items[(page - 1) * per_page: page * per_page], {"Link": link} if link else {}


@pytest.fixture(name="fake_github")
def fake_github_fixture(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A running FakeGitHub, stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    fake = FakeGitHub().start()
    yield fake
    fake.stop()


def main() -> None:
    """Serve the fake on the host for scripts/run-action (Ctrl-C to stop).

    python tests/github_fake.py [--port N] [--pull OWNER/NAME#N=SHA ...]
    """
    import argparse
    import signal
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prefix", default="", help='"" like api.github.com, "/api/v3" like GHES')
    ap.add_argument("--pull", action="append", default=[], metavar="OWNER/NAME#N=SHA")
    ap.add_argument("--seconds", type=float, default=3600, help="stop by itself after this long")
    a = ap.parse_args()
    fake = FakeGitHub(prefix=a.prefix)
    fake.server = ThreadingHTTPServer(("127.0.0.1", a.port), _handler_for(fake))
    for spec in a.pull:
        target, sha = spec.split("=", 1)
        repo, number = target.split("#", 1)
        fake.pulls[(repo, int(number))] = sha
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    print(f"fake GitHub API at {fake.url} (token {fake.token})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    deadline = time.monotonic() + a.seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for r in fake.requests:
        print(f"request: {r.method} {r.path}", flush=True)
    for (repo, issue), comments in fake.comments.items():
        for c in comments:
            print(f"--- {repo}#{issue} comment {c['id']} by {c['user']['login']}:\n{c['body']}", flush=True)
    fake.stop()


if __name__ == "__main__":
    main()
