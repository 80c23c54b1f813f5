"""deploy/deploy.sh's logic, with a fake `gcloud` and a fake `petcut` on PATH (no Google Cloud here).

The fakes log their argv; the fake gcloud answers `services list/describe` like Cloud Run (after
`services replace` its traffic is the rendered manifest's), the fake petcut fails the smoke calls whose
numbers are in FAKE_SMOKE_FAIL, the fake gcloud the update-traffic calls in FAKE_TRAFFIC_FAIL.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_SH = ROOT / "deploy" / "deploy.sh"
SERVICE_URL = "https://petcut-abc123-ez.a.run.app"

FAKE_GCLOUD = """\
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(["gcloud", *args]) + "\\n")
words = [a for a in args if not a.startswith("-")]

def count(name):
    path = state / name
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n

def url(tag):
    return SERVICE_URL.replace("https://", f"https://{tag}---")

if words[:2] == ["builds", "submit"]:
    sys.exit(int(os.environ.get("FAKE_BUILD_RC", "0")))
if words[:3] == ["run", "services", "list"]:
    print("petcut-staging")  # a filter on the name may match more than the service
    if os.environ.get("FAKE_NEW_SERVICE") != "1":
        print("petcut")
    sys.exit(0)
if words[:3] == ["run", "services", "describe"]:
    rendered = state / "replaced.yaml"
    if rendered.exists():
        import yaml
        traffic = yaml.safe_load(rendered.read_text())["spec"]["traffic"]
    else:
        traffic = json.loads(os.environ["FAKE_TRAFFIC"])
    traffic = [dict(t, url=url(t["tag"])) if t.get("tag") else t for t in traffic]
    print(json.dumps({"metadata": {"name": "petcut"}, "status": {"url": SERVICE_URL, "traffic": traffic}}))
    sys.exit(0)
if words[:3] == ["run", "services", "replace"]:
    rc = int(os.environ.get("FAKE_REPLACE_RC", "0"))
    if rc == 0:
        (state / "replaced.yaml").write_text(Path(words[3]).read_text())
    sys.exit(rc)
if words[:3] == ["run", "services", "update-traffic"]:
    n = count("traffic.count")
    sys.exit(1 if str(n) in os.environ.get("FAKE_TRAFFIC_FAIL", "").split(",") else 0)
print("fake gcloud: unexpected command", args, file=sys.stderr)
sys.exit(97)
"""

FAKE_PETCUT = """\
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(["petcut", *sys.argv[1:]]) + "\\n")
counter = state / "smoke.count"
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
if str(n) in os.environ.get("FAKE_SMOKE_FAIL", "").split(","):
    print(f"fake petcut: smoke {n} FAILED", file=sys.stderr)
    sys.exit(1)
"""

OLD = [{"revisionName": "petcut-old", "percent": 100, "latestRevision": True}]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]
    state: Path

    def steps(self) -> list[str]:
        """The calls as short labels, in order."""
        labels = []
        for call in self.calls:
            words = [a for a in call[1:] if not a.startswith("-")]
            if call[0] == "petcut":
                labels.append(f"smoke {'tag' if '---' in words[1] else 'service'}")
            elif words[:2] == ["builds", "submit"]:
                labels.append("build")
            elif words[:3] == ["run", "services", "update-traffic"]:
                flag = next(a for a in call if a.startswith(("--to-tags=", "--to-revisions=", "--to-latest")))
                labels.append(f"traffic {flag}")
            else:
                labels.append(words[2])
        return labels

    def rendered(self) -> dict[str, Any]:
        return yaml.safe_load((self.state / "replaced.yaml").read_text())


@pytest.fixture
def deploy(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("gcloud", f"SERVICE_URL = {SERVICE_URL!r}\n{FAKE_GCLOUD}"), ("petcut", FAKE_PETCUT)):
        code = tmp_path / f"fake_{name}.py"
        code.write_text(body)
        wrapper = bin_dir / name  # a shell wrapper: a long interpreter path would not fit a #! line
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(code))} "$@"\n')
        wrapper.chmod(0o755)

    def run(*args: str, traffic: list[dict[str, Any]] | None = None, **fake_env: str) -> Result:
        state = tmp_path / f"state{len(list(tmp_path.glob('state*')))}"
        state.mkdir()
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "GCLOUD": str(bin_dir / "gcloud"),
            "PETCUT": str(bin_dir / "petcut"),
            "PYTHON": sys.executable,
            "FAKE_STATE": str(state),
            "FAKE_TRAFFIC": json.dumps(OLD if traffic is None else traffic),
            "CANARY_INTERVAL": "0",
            **fake_env,
        }
        argv = ["bash", str(DEPLOY_SH), "--project", "demo", "--origin", "https://shop.example.com", "--tag", "r1"]
        argv += args
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        log = state / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls, state)

    return run


HAPPY = [
    "build", "list", "describe", "replace", "describe",
    "smoke tag",
    "traffic --to-tags=r1=10",
    "smoke service", "smoke tag",
    "smoke service", "smoke tag",
    "traffic --to-tags=r1=100",
    "smoke service",
]  # fmt: skip


def test_happy_path_builds_deploys_without_traffic_smokes_canaries_and_promotes(deploy) -> None:
    result = deploy("--canary-checks", "2")
    assert result.returncode == 0, result.stderr
    assert result.steps() == HAPPY
    image = "europe-west4-docker.pkg.dev/demo/petcut/petcut:r1"
    build = result.calls[0]
    assert f"--substitutions=_IMAGE={image},_TARGET=gpu,_MODE=base" in build
    assert f"--config={ROOT / 'deploy' / 'cloudbuild.yaml'}" in build
    rendered = result.rendered()
    assert rendered["spec"]["template"]["metadata"]["name"] == "petcut-r1"
    assert rendered["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert rendered["metadata"]["namespace"] == "demo"
    # the old revision keeps all traffic, pinned by name; the new one only gets its tag
    assert rendered["spec"]["traffic"] == [
        {"revisionName": "petcut-old", "percent": 100},
        {"revisionName": "petcut-r1", "tag": "r1", "percent": 0},
    ]
    smokes = [call for call in result.calls if call[0] == "petcut"]
    assert smokes[0] == ["petcut", "smoke", "https://r1---petcut-abc123-ez.a.run.app",
                         "--origin", "https://shop.example.com", "--wait", "300"]  # fmt: skip
    assert smokes[1][2] == SERVICE_URL
    for call in result.calls:
        if call[0] == "gcloud" and call[1] == "run":
            assert "--project=demo" in call and "--region=europe-west4" in call


def test_smoke_failure_on_the_tag_moves_no_traffic(deploy) -> None:
    result = deploy(FAKE_SMOKE_FAIL="1")
    assert result.returncode == 1
    assert result.steps() == ["build", "list", "describe", "replace", "describe", "smoke tag"]
    assert not any("update-traffic" in call for call in result.calls)
    assert "no traffic was moved" in result.stderr


@pytest.mark.parametrize("failing_smoke", ["2", "3"])  # the service URL, then the tag URL, in round 1
def test_canary_failure_rolls_back_to_the_previous_revision(deploy, failing_smoke: str) -> None:
    result = deploy("--canary-checks", "2", FAKE_SMOKE_FAIL=failing_smoke)
    assert result.returncode == 3
    steps = result.steps()
    assert steps[steps.index("traffic --to-tags=r1=10") + 1 :] == [
        *["smoke service", "smoke tag"][: int(failing_smoke) - 1],
        "traffic --to-revisions=petcut-old=100",
    ]
    assert "traffic --to-tags=r1=100" not in steps
    assert "rolling back" in result.stderr and "canary check 1 failed" in result.stderr


def test_failure_after_promotion_rolls_back(deploy) -> None:
    result = deploy("--canary-checks", "1", FAKE_SMOKE_FAIL="4")
    assert result.returncode == 3
    assert result.steps()[-3:] == ["traffic --to-tags=r1=100", "smoke service", "traffic --to-revisions=petcut-old=100"]


def test_rollback_restores_a_split_exactly(deploy) -> None:
    split = [
        {"revisionName": "petcut-a", "percent": 90, "tag": "a"},
        {"revisionName": "petcut-b", "percent": 10},
        {"revisionName": "petcut-b", "percent": 0, "tag": "b"},
    ]
    result = deploy("--canary-checks", "1", traffic=split, FAKE_SMOKE_FAIL="2")
    assert result.returncode == 3
    assert result.steps()[-1] == "traffic --to-revisions=petcut-a=90,petcut-b=10"
    assert result.rendered()["spec"]["traffic"] == [
        {"revisionName": "petcut-a", "percent": 90, "tag": "a"},
        {"revisionName": "petcut-b", "percent": 10},
        {"revisionName": "petcut-b", "percent": 0, "tag": "b"},
        {"revisionName": "petcut-r1", "tag": "r1", "percent": 0},
    ]


def test_failure_to_move_canary_traffic_rolls_back(deploy) -> None:
    result = deploy(FAKE_TRAFFIC_FAIL="1")
    assert result.returncode == 3
    assert result.steps()[-2:] == ["traffic --to-tags=r1=10", "traffic --to-revisions=petcut-old=100"]


def test_failed_rollback_says_so_and_how_to_fix_it(deploy) -> None:
    result = deploy(FAKE_SMOKE_FAIL="2", FAKE_TRAFFIC_FAIL="2")
    assert result.returncode == 4
    assert "ROLLBACK FAILED" in result.stderr
    assert "--to-revisions=petcut-old=100" in result.stderr


@pytest.mark.parametrize(("fake", "last"), [({"FAKE_BUILD_RC": "1"}, "build"), ({"FAKE_REPLACE_RC": "1"}, "replace")])
def test_build_or_deploy_failure_stops_before_any_smoke_or_traffic(deploy, fake: dict[str, str], last: str) -> None:
    result = deploy(**fake)
    assert result.returncode == 1
    assert result.steps()[-1] == last
    assert not any(call[0] == "petcut" or "update-traffic" in call for call in result.calls)


def test_new_service_gets_its_first_revision_after_the_smoke_test(deploy) -> None:
    result = deploy(FAKE_NEW_SERVICE="1")
    assert result.returncode == 0, result.stderr
    assert result.steps() == ["build", "list", "replace", "describe", "smoke tag"]
    assert result.rendered()["spec"]["traffic"] == [{"revisionName": "petcut-r1", "tag": "r1", "percent": 100}]


def test_existing_image_skips_the_build(deploy) -> None:
    result = deploy("--image", "europe-docker.pkg.dev/demo/x/petcut@sha256:abc", "--canary-checks", "0")
    assert result.returncode == 0, result.stderr
    assert "build" not in result.steps()
    image = result.rendered()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "europe-docker.pkg.dev/demo/x/petcut@sha256:abc"


def test_dry_run_runs_nothing_and_prints_every_command(deploy) -> None:
    result = deploy("--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.calls == []
    printed = result.stdout
    for fragment in ("gcloud builds submit", "gcloud run services replace", "--to-tags=r1=10", "--to-tags=r1=100",
                     "petcut smoke '<tag-url>' --origin https://shop.example.com"):  # fmt: skip
        assert fragment in printed


@pytest.mark.parametrize(
    "args",
    [
        ["--origin", ""],
        ["--tag", "Release_1"],
        ["--canary-percent", "100"],
        ["--target", "tpu"],
        ["--bogus"],
    ],
)
def test_bad_usage_exits_2_before_calling_anything(deploy, args: list[str]) -> None:
    result = deploy(*args)
    assert result.returncode == 2, result.stderr
    assert result.calls == []


# --- the manifest helper on its own --------------------------------------------------------------
def manifest_module():
    spec = importlib.util.spec_from_file_location("manifest", ROOT / "deploy" / "cloudrun" / "manifest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_refuses_a_traffic_split_that_does_not_add_up() -> None:
    manifest = manifest_module()
    service = yaml.safe_load((ROOT / "deploy" / "cloudrun" / "service.yaml").read_text())
    current = {"status": {"traffic": [{"revisionName": "petcut-a", "percent": 60}]}}
    with pytest.raises(SystemExit, match="60 %"):
        manifest.render(service, service="petcut", project="p", region="r", image="i", revision="petcut-x",
                        tag="x", current=current)  # fmt: skip
    with pytest.raises(SystemExit, match="must start with petcut-"):
        manifest.render(service, service="petcut", project="p", region="r", image="i", revision="other-x",
                        tag="x", current=None)  # fmt: skip
