"""A small GitHub REST client: auth, pagination, retries and rate limits.

Works against github.com and GHES (GITHUB_API_URL like http://host/api/v3). The token
is kept out of every message, log line and repr.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from gate.errors import BadInputError, GateError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 1000
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: wait at least a minute when no header says how long
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

log = logging.getLogger("gate.github")


class GitHubError(GateError):
    """A GitHub API call failed. status is the HTTP status, or None if no response came."""

    kind = "github"

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        self.status = status
        super().__init__(message, hint=hint)


class GitHubPermissionError(GitHubError):
    """401/403 that is not a rate limit, e.g. a fork PR's read-only token."""


class GitHubValidationError(GitHubError):
    """422: GitHub refused the request's content."""


class GitHubRateLimitError(GitHubError):
    """Rate limited for longer than the client is willing to wait."""


class GitHubUnavailableError(GitHubError):
    """5xx, timeout or connection error. ambiguous: a write may have been applied."""

    def __init__(self, message: str, *, status: int | None = None, ambiguous: bool = False):
        self.ambiguous = ambiguous
        super().__init__(message, status=status)


class _Secret:
    """Holds the token; never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


class GitHubClient:
    """REST calls with auth headers, Link pagination, bounded retries and rate-limit waits.

    POST is not retried after a 5xx, timeout or dropped connection, since it may have
    been applied; the caller gets GitHubUnavailableError(ambiguous=True) and decides.
    """

    def __init__(self, token: str | None, *, api_url: str = DEFAULT_API_URL,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = (10.0, 30.0), max_attempts: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0,
                 max_rate_limit_wait: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time,
                 user_agent: str = "model-gate"):
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInputError(f"expected http(s)://host[/path], got {api_url!r}",
                                field="GITHUB_API_URL")
        self._origin = (parts.scheme, parts.netloc.lower())
        token = (token or "").strip()
        if any(c.isspace() or not c.isprintable() for c in token):
            raise BadInputError("the GitHub token contains whitespace or control characters",
                                field="github-token")
        self._token = _Secret(token) if token else None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self.sleep = sleep
        self.clock = clock
        self.user_agent = user_agent

    @classmethod
    def from_env(cls, env: Mapping[str, str], token: str | None, **kwargs: Any) -> GitHubClient:
        """Client for the API named by GITHUB_API_URL (default api.github.com)."""
        return cls(token, api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL, **kwargs)

    def __repr__(self) -> str:
        token = "<redacted>" if self._token else None
        return f"GitHubClient(api_url={self.api_url!r}, token={token})"

    # -- low level -------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": API_VERSION, "User-Agent": self.user_agent}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return headers

    def _scrub(self, text: str) -> str:
        return text.replace(self._token.reveal(), "<redacted>") if self._token else text

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                # Never send the token to a host other than the configured API.
                raise GitHubError(f"refusing to follow a link off {self.api_url}: "
                                  f"{parts.scheme}://{parts.netloc}")
            return path_or_url
        return self.api_url + "/" + path_or_url.lstrip("/")

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff before retry number `attempt` (1-based), capped."""
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)

    def _rate_limit_wait(self, resp: requests.Response) -> float | None:
        """Seconds to wait if resp is a rate-limit response, else None."""
        if resp.status_code not in (403, 429):
            return None
        retry_after = resp.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                return SECONDARY_LIMIT_WAIT
        if resp.headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(float(resp.headers.get("x-ratelimit-reset", "")) - self.clock(), 0.0) + 1
            except ValueError:
                return SECONDARY_LIMIT_WAIT
        if resp.status_code == 429 or "rate limit" in _message(resp).lower():
            return SECONDARY_LIMIT_WAIT
        return None

    def _error(self, method: str, url: str, resp: requests.Response) -> GitHubError:
        what = f"{method} {urlsplit(url).path} -> {resp.status_code}: {self._scrub(_message(resp))}"
        if resp.status_code in (401, 403):
            hint = ("pull requests from forks get a read-only token; the report is still "
                    "in the job summary" if resp.status_code == 403 else
                    "check the github-token input")
            return GitHubPermissionError(what, status=resp.status_code, hint=hint)
        if resp.status_code == 422:
            return GitHubValidationError(what, status=422)
        if resp.status_code >= 500:
            return GitHubUnavailableError(what, status=resp.status_code,
                                          ambiguous=method.upper() == "POST")
        return GitHubError(what, status=resp.status_code)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> requests.Response:
        """One API call with retries; raises a GitHubError subclass on failure."""
        method = method.upper()
        url = self._url(path)
        idempotent = method != "POST"
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                resp = self.session.request(method, url, params=params, json=json,
                                            headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as exc:
                sent = not isinstance(exc, requests.ConnectTimeout)
                reason = self._scrub(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("%s %s failed (attempt %d/%d): %s", method, urlsplit(url).path,
                            attempt, self.max_attempts, reason)
                if last or (sent and not idempotent):
                    raise GitHubUnavailableError(f"{method} {urlsplit(url).path}: {reason}",
                                                 ambiguous=sent and not idempotent) from None
                self.sleep(self.backoff_delay(attempt))
                continue
            if resp.status_code < 400:
                return resp
            wait = self._rate_limit_wait(resp)
            if wait is not None:
                log.warning("%s %s rate limited (%d); retry in %.0fs", method,
                            urlsplit(url).path, resp.status_code, wait)
                if last or wait > self.max_rate_limit_wait:
                    raise GitHubRateLimitError(
                        f"{method} {urlsplit(url).path}: rate limited by GitHub "
                        f"(next try allowed in {wait:.0f}s)",
                        status=resp.status_code)
                self.sleep(wait)
                continue
            error = self._error(method, url, resp)
            if resp.status_code >= 500 and idempotent and not last:
                log.warning("%s (attempt %d/%d); retrying", error.message, attempt,
                            self.max_attempts)
                self.sleep(self.backoff_delay(attempt))
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    # -- conveniences ----------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _json(self.request("GET", path, params=params))

    def post_json(self, path: str, payload: Any) -> Any:
        return _json(self.request("POST", path, json=payload))

    def patch_json(self, path: str, payload: Any) -> Any:
        return _json(self.request("PATCH", path, json=payload))

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Yield items of a list endpoint across all pages, following Link rel="next"."""
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        for _ in range(MAX_PAGES):
            resp = self.request("GET", url, params=query)
            items = _json(resp)
            if not isinstance(items, list):
                raise GitHubError(f"GET {urlsplit(resp.url).path}: expected a JSON list")
            yield from items
            match = _LINK_NEXT.search(resp.headers.get("link", ""))
            if not match:
                return
            url, query = match.group(1), None  # the next link carries the query
        raise GitHubError(f"GET {path}: more than {MAX_PAGES} pages")

    def viewer_login(self) -> str | None:
        """Login of the token's identity, or None when GET /user is not allowed (app tokens)."""
        try:
            user = self.get_json("/user")
        except GitHubError as exc:
            log.info("GET /user not available for this token (%s)", exc.status)
            return None
        login = user.get("login") if isinstance(user, dict) else None
        return login if isinstance(login, str) else None


def _message(resp: requests.Response) -> str:
    """GitHub's error message from a response body, short and single-line."""
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or resp.reason or "").strip().replace("\n", " ")[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    message = str(body.get("message") or resp.reason or "")
    details = [str(e.get("message") or e.get("code")) for e in body.get("errors") or []
               if isinstance(e, dict) and (e.get("message") or e.get("code"))]
    if details:
        message += ": " + "; ".join(details)
    return message.replace("\n", " ")[:300]


def _json(resp: requests.Response) -> Any:
    if resp.status_code == 204 or not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise GitHubError(f"{resp.request.method} {urlsplit(resp.url).path}: "
                          f"response is not JSON") from None
