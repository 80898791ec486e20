"""The image's build files, its release workflow and the supported Pythons: read as files
(nothing is built or run here; .ci/run and scripts/run-action do that)."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
RELEASE = ROOT / ".github" / "workflows" / "release-image.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def stages(text: str) -> list[str]:
    """The Dockerfile's stages, comments dropped and continuation lines joined."""
    body = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return re.split(r"^FROM .*$", body, flags=re.M)[1:]


def test_two_stages_on_the_same_base_and_the_last_copies_only_the_venv():
    froms = re.findall(r"^FROM (.*)$", DOCKERFILE, flags=re.M)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    final = stages(DOCKERFILE)[-1]
    assert re.findall(r"^COPY (.*)$", final, flags=re.M) == ["--from=0 /opt/gate /opt/gate"]


def test_the_final_stage_has_git_trusting_every_directory_and_no_apt_lists():
    final = stages(DOCKERFILE)[-1]
    install = re.search(r"apt-get install ([^&]*)", final).group(1).split()
    assert "--no-install-recommends" in install and "git" in install
    assert "rm -rf /var/lib/apt/lists/*" in final and "apt-get clean" in final
    assert r"printf '[safe]\n\tdirectory = *\n' > /etc/gitconfig" in final


def test_only_tensorflow_and_litert_libraries_are_stripped():
    # numpy, scipy and h5py are auditwheel-repaired: stripping them breaks loading.
    strip = [line for line in stages(DOCKERFILE)[0].splitlines() if "strip " in line]
    assert strip, "no strip step"
    for line in strip:
        assert re.search(r'find "\$site/tensorflow" "\$site/ai_edge_litert" .*-exec strip --strip-unneeded', line)


def test_bytecode_is_hash_based():
    # mtime-based .pyc files go stale through COPY --from (rounded mtimes).
    first = stages(DOCKERFILE)[0]
    assert "--no-compile" in first and first.count("--invalidation-mode unchecked-hash") == 2


def test_release_workflow_matches_githubs_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                             "vendor.github-workflows", str(RELEASE)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_release_workflow_pins_actions_and_grants_least_privilege():
    text = RELEASE.read_text()
    data = yaml.safe_load(text)
    assert data["permissions"] == {}
    assert data[True] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}  # YAML 1.1 reads `on:` as True
    jobs = data["jobs"]
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write", "id-token": "write",
                                            "attestations": "write"}
    assert jobs["release"]["permissions"] == {"contents": "write"}
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]
            if "run" in step:
                assert "${{" not in step["run"], "expressions go through env:, not into the script"
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False
    build = next(s for s in jobs["image"]["steps"] if "docker/build-push-action" in s.get("uses", ""))
    assert build["with"]["provenance"] == "mode=max" and build["with"]["sbom"] is True
    assert build["with"]["push"] is True and "cache-from" not in build["with"]
    attest = next(s for s in jobs["image"]["steps"] if "attest-build-provenance" in s.get("uses", ""))
    assert attest["with"]["subject-digest"] == "${{ steps.build.outputs.digest }}"


def test_main_runs_the_dockerfile_and_the_release_rewrites_exactly_that_line():
    action = (ROOT / "action.yml").read_text()
    assert "\n  image: Dockerfile\n" in action
    assert "grep -qx '  image: Dockerfile' action.yml" in RELEASE.read_text()


def test_ci_smoke_tests_every_python_that_requires_python_admits():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    admitted = [f"3.{m}" for m in range(8, 20) if SpecifierSet(project["requires-python"]).contains(f"3.{m}.0")]
    assert admitted == ["3.11", "3.12", "3.13"]
    ci = (ROOT / ".ci" / "run").read_text()
    # python3 (3.11 here) runs the README's test command; the loop covers the others.
    assert re.search(r"^for minor in (.*); do$", ci, flags=re.M).group(1).split() == admitted[1:]
    readme_test = next(line.split("#")[0].rstrip() for line in (ROOT / "README.md").read_text().splitlines()
                       if "pytest" in line and line.startswith("python3 -m venv"))
    assert readme_test in ci.splitlines()


def test_the_lock_pins_setuptools_for_tfmots_distutils():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"setuptools>=66\.1\b", d) for d in deps)
    pins = dict(line.split("==") for line in (ROOT / "requirements" / "action.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert SpecifierSet(">=66.1").contains(pins["setuptools"])


def test_hadolint_passes_and_every_ignore_says_why():
    exe = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(exe), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = DOCKERFILE.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rule = line.split("=", 1)[1]
            assert any(rule in earlier for earlier in lines[max(0, i - 6):i]), f"no reason given for {line}"
