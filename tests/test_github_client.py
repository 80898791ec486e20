"""REST client and sticky comment against a local fake GitHub (tests/github_fake.py)."""
from __future__ import annotations

import logging

import pytest
from github_fake import BOT_LOGIN, FAKE_TOKEN, FakeGitHub, fake_github_fixture  # noqa: F401

from gate.errors import BadInputError
from gate.github.client import (
    GitHubClient,
    GitHubError,
    GitHubPermissionError,
    GitHubRateLimitError,
    GitHubUnavailableError,
    GitHubValidationError,
)
from gate.github.comment import (
    MAX_BODY_CHARS,
    TRUNCATION_NOTE,
    find_comment,
    fit_body,
    marker_for,
    upsert_comment,
)

REPO = "octo-org/octo-repo"
PR = 7
NOW = 1_700_000_000.0
COMMENTS = f"/repos/{REPO}/issues/{PR}/comments"
ANY_COMMENTS = r"/repos/[^/]+/[^/]+/issues/\d+/comments"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake_github: FakeGitHub, sleeps: list[float]) -> GitHubClient:
    return GitHubClient(FAKE_TOKEN, api_url=fake_github.url, sleep=sleeps.append,
                        clock=lambda: NOW)


def upsert(client: GitHubClient, body: str, marker_id: str = "gate.yaml", **kw):
    return upsert_comment(client, REPO, PR, body, marker_id, **kw)


# -- client ------------------------------------------------------------------------------

def test_sends_github_headers_and_asks_for_100_per_page(client, fake_github) -> None:
    assert list(client.paginate(COMMENTS)) == []
    (req,) = fake_github.requests
    assert req.path == f"{COMMENTS}?per_page=100"
    assert req.headers["Accept"] == "application/vnd.github+json"
    assert req.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert req.headers["Authorization"] == f"Bearer {FAKE_TOKEN}"


def test_works_without_ghes_prefix(sleeps) -> None:
    fake = FakeGitHub(prefix="").start()
    try:
        client = GitHubClient.from_env({"GITHUB_API_URL": fake.url + "/"}, FAKE_TOKEN)
        assert client.api_url == fake.url
        fake.add_comment(REPO, PR, "hi")
        assert [c["body"] for c in client.paginate(COMMENTS)] == ["hi"]
    finally:
        fake.stop()


def test_from_env_defaults_to_github_com() -> None:
    assert GitHubClient.from_env({}, None).api_url == "https://api.github.com"
    with pytest.raises(BadInputError):
        GitHubClient("t", api_url="ftp://example.com")


def test_token_with_control_characters_is_refused_without_echoing_it() -> None:
    with pytest.raises(BadInputError) as err:
        GitHubClient("secret-part\nInjected: header")
    assert "secret-part" not in str(err.value)
    assert GitHubClient(f" {FAKE_TOKEN}\n")._headers()["Authorization"] == f"Bearer {FAKE_TOKEN}"


@pytest.mark.parametrize("cap, pages", [(100, 3), (30, 9)])
def test_pagination_follows_link_headers(client, fake_github, cap, pages) -> None:
    fake_github.page_cap = cap
    for i in range(250):
        fake_github.add_comment(REPO, PR, f"c{i}")
    bodies = [c["body"] for c in client.paginate(COMMENTS)]
    assert bodies == [f"c{i}" for i in range(250)]
    assert len(fake_github.calls("GET")) == pages


def test_link_to_another_host_is_refused(client) -> None:
    with pytest.raises(GitHubError, match="refusing"):
        client.request("GET", "https://evil.example/repos/x")


def test_server_error_is_retried_with_backoff(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "server_error", times=2)
    assert list(client.paginate(COMMENTS)) == []
    assert sleeps == [1.0, 2.0]


def test_retries_are_bounded(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "server_error", times=99, status=503)
    with pytest.raises(GitHubUnavailableError) as err:
        list(client.paginate(COMMENTS))
    assert err.value.status == 503 and not err.value.ambiguous
    assert sleeps == [1.0, 2.0, 4.0] and len(fake_github.requests) == 4


def test_primary_rate_limit_waits_until_reset(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "primary_rate_limit", reset=int(NOW) + 30)
    assert list(client.paginate(COMMENTS)) == []
    assert sleeps == [31.0]


def test_primary_rate_limit_beyond_max_wait_gives_up(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "primary_rate_limit", reset=int(NOW) + 3600)
    with pytest.raises(GitHubRateLimitError, match="rate limited"):
        list(client.paginate(COMMENTS))
    assert sleeps == [] and len(fake_github.requests) == 1


def test_secondary_rate_limit_honours_retry_after(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "secondary_rate_limit", retry_after=7)
    fake_github.fail("GET", COMMENTS, "secondary_rate_limit", status=403)  # no header
    assert list(client.paginate(COMMENTS)) == []
    assert sleeps == [7.0, 60.0]


def test_forbidden_without_rate_limit_is_not_retried(client, fake_github, sleeps) -> None:
    fake_github.fail("POST", COMMENTS, "fork")
    with pytest.raises(GitHubPermissionError, match="Resource not accessible by integration"):
        client.post_json(COMMENTS, {"body": "x"})
    assert sleeps == [] and len(fake_github.requests) == 1


def test_unprocessable_carries_githubs_message(client, fake_github) -> None:
    fake_github.body_limit = 10
    with pytest.raises(GitHubValidationError) as err:
        client.post_json(COMMENTS, {"body": "x" * 11})
    assert "Body is too long (maximum is 10 characters)" in err.value.message
    assert err.value.status == 422


def test_post_is_not_retried_after_server_error(client, fake_github, sleeps) -> None:
    fake_github.fail("POST", COMMENTS, "server_error", times=5)
    with pytest.raises(GitHubUnavailableError) as err:
        client.post_json(COMMENTS, {"body": "x"})
    assert err.value.ambiguous and len(fake_github.calls("POST")) == 1 and sleeps == []


def test_connection_errors_are_retried_then_reported(fake_github, sleeps) -> None:
    url = fake_github.url
    fake_github.stop()
    client = GitHubClient(FAKE_TOKEN, api_url=url, sleep=sleeps.append, timeout=(1, 1))
    with pytest.raises(GitHubUnavailableError) as err:
        client.get_json("/user")
    assert sleeps == [1.0, 2.0, 4.0]
    assert FAKE_TOKEN not in str(err.value)


def test_viewer_login(client, fake_github) -> None:
    assert client.viewer_login() is None  # installation tokens cannot GET /user
    fake_github.user_endpoint, fake_github.login = True, "octocat"
    assert client.viewer_login() == "octocat"


def test_bad_token_is_a_permission_error(fake_github) -> None:
    client = GitHubClient("wrong-token-value", api_url=fake_github.url)
    with pytest.raises(GitHubPermissionError, match="Bad credentials") as err:
        client.get_json(COMMENTS)
    assert "wrong-token-value" not in str(err.value)


# -- sticky comment ----------------------------------------------------------------------

def test_first_run_creates_then_updates_in_place(client, fake_github) -> None:
    first = upsert(client, "## Gate: PASS")
    assert first.action == "created" and first.warning is None
    assert first.url and first.url.endswith(f"#issuecomment-{first.id}")
    second = upsert(client, "## Gate: FAIL")
    assert (second.action, second.id) == ("updated", first.id)
    (comment,) = fake_github.issue_comments(REPO, PR)
    assert comment["body"] == f"{marker_for('gate.yaml')}\n## Gate: FAIL"


def test_unchanged_body_is_not_patched(client, fake_github) -> None:
    first = upsert(client, "same")
    assert upsert(client, "same") == type(first)("unchanged", first.id, first.url)
    assert fake_github.calls("PATCH") == []


def test_marker_on_second_page_is_found(client, fake_github) -> None:
    fake_github.page_cap = 30  # GitHub's default page size; forces page 2
    for i in range(32):
        fake_github.add_comment(REPO, PR, f"review {i}", login=f"user{i}")
    ours = fake_github.add_comment(REPO, PR, f"{marker_for('gate.yaml')}\nold")  # comment #33
    result = upsert(client, "new")
    assert (result.action, result.id) == ("updated", ours["id"])
    assert len(fake_github.issue_comments(REPO, PR)) == 33
    paths = [r.path for r in fake_github.calls("GET") if "/issues/" in r.path]
    assert paths[0].endswith("?per_page=100") and "page=2" in paths[1]


def test_marker_quoted_by_someone_else_is_ignored(client, fake_github) -> None:
    quoted = f"> {marker_for('gate.yaml')}\n> the bot said PASS"
    theirs = fake_github.add_comment(REPO, PR, quoted, login="mallory")
    result = upsert(client, "report")
    assert result.action == "created" and result.id != theirs["id"]
    assert fake_github.issue_comments(REPO, PR)[0]["body"] == quoted


def test_two_configs_keep_two_comments(client, fake_github) -> None:
    a = upsert(client, "a", marker_id="models/a.yaml")
    b = upsert(client, "b", marker_id="models/ab.yaml")
    assert a.id != b.id and len(fake_github.issue_comments(REPO, PR)) == 2
    assert upsert(client, "a2", marker_id="models/a.yaml").id == a.id


def test_marker_id_cannot_close_the_html_comment() -> None:
    marker = marker_for("evil --> <script>x</script> <!--")
    assert marker.startswith("<!-- model-gate:") and marker.endswith(" -->")
    assert "-->" not in marker[:-3] and "<" not in marker[4:] and ">" not in marker[:-1]
    assert marker_for("") == "<!-- model-gate:default -->"


def test_author_from_get_user_or_explicit(client, fake_github) -> None:
    fake_github.user_endpoint, fake_github.login = True, "gate-bot"
    ours = fake_github.add_comment(REPO, PR, f"{marker_for('gate.yaml')}\nold", login="gate-bot")
    fake_github.add_comment(REPO, PR, f"{marker_for('gate.yaml')}\nold", login=BOT_LOGIN)
    assert upsert(client, "new").id == ours["id"]
    assert find_comment(client, REPO, PR, "gate.yaml", author_login="GATE-BOT")["id"] == ours["id"]
    fake_github.login = BOT_LOGIN
    other = upsert(client, "x", author_login=BOT_LOGIN)
    assert other.action == "updated" and other.id != ours["id"]


def test_fork_pr_is_skipped_with_warning(client, fake_github) -> None:
    fake_github.fail("POST", ANY_COMMENTS, "fork")
    result = upsert(client, "report")
    assert result.action == "skipped" and result.id is None
    assert "Resource not accessible by integration" in result.warning
    assert "fork" in result.warning and fake_github.issue_comments(REPO, PR) == []


def test_secondary_rate_limit_on_post_is_honoured(client, fake_github, sleeps) -> None:
    fake_github.fail("POST", COMMENTS, "secondary_rate_limit", retry_after=5)
    assert upsert(client, "report").action == "created"
    assert sleeps == [5.0] and len(fake_github.issue_comments(REPO, PR)) == 1


def test_server_error_then_success(client, fake_github, sleeps) -> None:
    fake_github.fail("GET", COMMENTS, "server_error")
    assert upsert(client, "report").action == "created"
    assert sleeps == [1.0]


@pytest.mark.parametrize("kind", ["store_then_fail", "store_then_disconnect"])
def test_lost_post_response_never_duplicates(client, fake_github, kind) -> None:
    fake_github.fail("POST", COMMENTS, kind)
    result = upsert(client, "report")
    (comment,) = fake_github.issue_comments(REPO, PR)
    assert (result.action, result.id) == ("created", comment["id"])
    assert len(fake_github.calls("POST")) == 1


def test_post_that_did_not_land_is_posted_again(client, fake_github) -> None:
    fake_github.fail("POST", COMMENTS, "server_error", status=502)
    result = upsert(client, "report")
    assert result.action == "created" and len(fake_github.issue_comments(REPO, PR)) == 1
    assert len(fake_github.calls("POST")) == 2


def test_exhausted_failures_are_skipped_not_raised(client, fake_github) -> None:
    fake_github.fail("GET", COMMENTS, "server_error", times=99)
    result = upsert(client, "report")
    assert result.action == "skipped" and "Server Error" in result.warning


def test_repeatedly_lost_posts_stop(client, fake_github) -> None:
    fake_github.fail("POST", COMMENTS, "server_error", times=99)
    result = upsert(client, "report")
    assert result.action == "skipped" and len(fake_github.calls("POST")) == client.max_attempts


def test_long_body_is_cut_on_a_line_and_keeps_marker(client, fake_github) -> None:
    body = "".join(f"| row {i} | {'x' * 50} |\n" for i in range(3000))  # ~180k chars
    result = upsert(client, body)
    (comment,) = fake_github.issue_comments(REPO, PR)
    text = comment["body"]
    assert result.action == "created" and len(text) <= MAX_BODY_CHARS
    assert text.startswith(marker_for("gate.yaml") + "\n| row 0 |")
    assert text.endswith(TRUNCATION_NOTE)
    assert text[: -len(TRUNCATION_NOTE)].endswith("x" * 50 + " |")
    assert upsert(client, body).action == "unchanged"


def test_422_too_long_cuts_further_and_posts(client, fake_github) -> None:
    fake_github.body_limit = 5000  # GitHub counts differently than we did
    body = "".join(f"line {i}\n" for i in range(2000))
    result = upsert(client, body)
    (comment,) = fake_github.issue_comments(REPO, PR)
    assert result.action == "created" and len(comment["body"]) <= 5000
    assert comment["body"].startswith(marker_for("gate.yaml"))
    assert len(fake_github.calls("POST")) == 2


def test_fit_body_closes_open_code_fence() -> None:
    body = "<!-- m -->\n<details>\n\n```\n" + "log line\n" * 100
    cut = fit_body(body, 300)
    assert len(cut) <= 300 and cut.endswith(TRUNCATION_NOTE)
    head = cut[: -len(TRUNCATION_NOTE)]
    assert head.endswith("log line\n```\n</details>")
    assert fit_body("short", 300) == "short"


@pytest.mark.parametrize("repo, pr", [("not a repo", PR), ("../x/y", PR), (REPO, 0)])
def test_bad_target_is_skipped(client, fake_github, repo, pr) -> None:
    result = upsert_comment(client, repo, pr, "x", "gate.yaml")
    assert result.action == "skipped" and fake_github.requests == []


# -- the token stays secret --------------------------------------------------------------

def test_token_never_appears_in_logs_errors_or_repr(client, fake_github, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [repr(client), str(client.__dict__)]
    fake_github.fail("GET", ANY_COMMENTS, "server_error", times=99)
    texts.append(upsert(client, "a").warning)
    fake_github.faults.clear()
    fake_github.fail("POST", ANY_COMMENTS, "fork")
    texts.append(upsert(client, "b").warning)
    fake_github.fail("POST", ANY_COMMENTS, "store_then_disconnect")
    texts.append(str(upsert(client, "c")))
    for call in (lambda: client.get_json("/nope"),
                 lambda: GitHubClient(FAKE_TOKEN, api_url="http://127.0.0.1:9",
                                      max_attempts=1).get_json("/user")):
        with pytest.raises(GitHubError) as err:
            call()
        texts += [str(err.value), repr(err.value), str(err.value.to_dict())]
    out, err_text = capsys.readouterr()
    assert caplog.records  # retries and results were logged
    for text in [*texts, caplog.text, out, err_text]:
        assert FAKE_TOKEN not in text
