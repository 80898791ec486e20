"""Event parsing on real webhook payloads.

tests/fixtures/events/*.json are copied unchanged from octokit/webhooks
(payload-examples/api.github.com/, MIT licence), via /work/shared/data/github-events.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gate.errors import BadInputError
from gate.github.event import Event, load_event, parse_event

EVENTS = Path(__file__).parent / "fixtures" / "events"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
BASE = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
RUN_SHA = "0123456789abcdef0123456789abcdef01234567"


def payload(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load(tmp_path: Path, event_name: str, data: object, **env: str) -> Event:
    path = tmp_path / "event.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return load_event({"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(path), **env})


@pytest.mark.parametrize("fixture, action", [
    ("pull_request.opened.json", "opened"),
    ("pull_request.synchronize.json", "synchronize"),
    ("pull_request.reopened.json", "reopened"),
    ("pull_request.opened.with-null-body.json", "opened"),
    ("pull_request.opened.with-organization.json", "opened"),
])
def test_pull_request_events(fixture: str, action: str) -> None:
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(EVENTS / fixture)}
    event = load_event(env)
    assert event == Event(name="pull_request", action=action, repo="Codertocat/Hello-World",
                          default_branch="master", pr_number=2, head_sha=HEAD, base_sha=BASE,
                          base_ref="master", head_ref="changes", is_fork=False)
    assert event.is_pull_request


def test_fork_pull_request(tmp_path: Path) -> None:
    data = payload("pull_request.opened.json")
    data["pull_request"]["head"]["repo"]["fork"] = True
    data["pull_request"]["head"]["repo"]["full_name"] = "someone-else/Hello-World"
    assert load(tmp_path, "pull_request", data).is_fork


def test_pull_request_from_deleted_fork_counts_as_fork() -> None:
    data = payload("pull_request.opened.json")
    data["pull_request"]["head"]["repo"] = None
    assert parse_event("pull_request", data).is_fork


def test_pull_request_target_is_parsed_like_pull_request() -> None:
    event = parse_event("pull_request_target", payload("pull_request.opened.json"))
    assert (event.pr_number, event.head_sha, event.base_sha) == (2, HEAD, BASE)


def test_push_deleting_a_tag_falls_back_to_github_sha() -> None:
    data = payload("push.json")
    event = parse_event("push", data, sha=RUN_SHA)
    # this payload's "after" is all zeros (a tag deletion): there is no head commit in it
    assert event.head_sha == RUN_SHA
    assert event.base_sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert (event.pr_number, event.head_ref, event.is_fork) == (None, "refs/tags/simple-tag", False)
    assert event.repo == "Codertocat/Hello-World" and event.default_branch == "master"


def test_push_with_real_after_sha() -> None:
    data = payload("push.json")
    data["after"] = HEAD
    assert parse_event("push", data, sha=RUN_SHA).head_sha == HEAD


def test_release_takes_sha_from_github_sha(tmp_path: Path) -> None:
    event = load(tmp_path, "release", payload("release.published.json"), GITHUB_SHA=RUN_SHA)
    assert (event.action, event.head_sha, event.head_ref, event.pr_number) == \
        ("published", RUN_SHA, "0.0.1", None)


def test_workflow_dispatch(tmp_path: Path) -> None:
    # Shape from GitHub's docs (no example in the octokit set): inputs, ref, repository.
    data = {"inputs": {"config": "gate.yaml"}, "ref": "refs/heads/main",
            "repository": copy.deepcopy(payload("push.json")["repository"]),
            "sender": {"login": "Codertocat"}, "workflow": ".github/workflows/gate.yml"}
    event = load(tmp_path, "workflow_dispatch", data, GITHUB_SHA=RUN_SHA)
    assert event == Event(name="workflow_dispatch", action=None, repo="Codertocat/Hello-World",
                          default_branch="master", pr_number=None, head_sha=RUN_SHA,
                          base_sha=None, base_ref=None, head_ref="refs/heads/main", is_fork=False)


def test_workflow_run_without_pull_requests() -> None:
    event = parse_event("workflow_run", payload("workflow_run.completed.json"))
    assert (event.repo, event.pr_number, event.head_sha, event.base_sha, event.is_fork) == \
        ("octo-org/octo-repo", None, "3484a3fb816e0859fd6e1cea078d76385ff50625", None, False)


def test_workflow_run_with_pull_requests() -> None:
    event = parse_event("workflow_run", payload("workflow_run.completed.with-pull-requests.json"))
    assert (event.pr_number, event.base_sha, event.base_ref, event.head_ref) == \
        (2, BASE, "master", "master")


def test_workflow_run_from_fork() -> None:
    data = payload("workflow_run.completed.json")
    data["workflow_run"]["head_repository"]["full_name"] = "someone-else/octo-repo"
    assert parse_event("workflow_run", data).is_fork


def test_unknown_event_still_parses() -> None:
    event = parse_event("schedule", {"schedule": "0 0 * * *"}, sha=RUN_SHA)
    assert (event.repo, event.head_sha, event.pr_number) == (None, RUN_SHA, None)


def test_repo_falls_back_to_github_repository(tmp_path: Path) -> None:
    event = load(tmp_path, "schedule", {}, GITHUB_REPOSITORY="o/r")
    assert event.repo == "o/r"


# -- untrusted input ---------------------------------------------------------------------

def test_bad_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load(tmp_path, "pull_request", "{not json")
    assert err.value.file == str(tmp_path / "event.json")
    assert "not valid JSON" in err.value.message and err.value.exit_code == 2


def test_root_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load(tmp_path, "push", [1, 2])
    assert err.value.field == "(root)"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["pull_request"].__setitem__("number", "2"), "pull_request.number"),
    (lambda d: d["pull_request"].__setitem__("number", True), "pull_request.number"),
    (lambda d: d["pull_request"].__setitem__("number", -1), "pull_request.number"),
    (lambda d: d["pull_request"]["head"].__setitem__("sha", 12), "pull_request.head.sha"),
    (lambda d: d["pull_request"]["head"].__setitem__("sha", "$(rm -rf)"), "pull_request.head.sha"),
    (lambda d: d["pull_request"]["base"].__setitem__("ref", ["x"]), "pull_request.base.ref"),
    (lambda d: d.__setitem__("pull_request", []), "pull_request"),
    (lambda d: d["repository"].__setitem__("full_name", {}), "repository.full_name"),
])
def test_wrong_types_name_the_field(tmp_path: Path, mutate, field: str) -> None:
    data = payload("pull_request.opened.json")
    mutate(data)
    with pytest.raises(BadInputError) as err:
        load(tmp_path, "pull_request", data)
    assert err.value.field == field
    assert err.value.file == str(tmp_path / "event.json")


def test_workflow_run_pull_request_entry_must_be_object() -> None:
    data = payload("workflow_run.completed.json")
    data["workflow_run"]["pull_requests"] = ["2"]
    with pytest.raises(BadInputError) as err:
        parse_event("workflow_run", data)
    assert err.value.field == "workflow_run.pull_requests[0]"


def test_missing_environment_and_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load_event({"GITHUB_EVENT_NAME": "push"})
    assert err.value.field == "GITHUB_EVENT_PATH"
    with pytest.raises(BadInputError) as err:
        load_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "nope")})
    assert "cannot read" in err.value.message


def test_event_is_frozen() -> None:
    event = parse_event("push", payload("push.json"))
    with pytest.raises(AttributeError):
        event.pr_number = 3  # type: ignore[misc]
