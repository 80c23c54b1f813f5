"""deploy/Dockerfile, read statically (no Docker here): targets, pinned bases, weights, user, health check.

The HEALTHCHECK command itself is run against a local HTTP server.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def text(self) -> str:
        return "\n".join(f"{kw} {args}" for kw, args in self.instructions)


Parsed = tuple[dict[str, str], dict[str, Stage]]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    result, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def parse() -> Parsed:
    """Global ARG defaults and the stages by name, with ${ARG} in FROM resolved."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.I)
            assert match, f"every stage is named: FROM {args}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], match[1])
            current = stages[match[2]] = Stage(match[2], base)
        elif current is None:
            assert keyword == "ARG", f"only ARG before the first FROM, not {keyword}"
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
        else:
            current.instructions.append((keyword, args))
    return global_args, stages


def chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built on, down to the one FROM an external image."""
    result = [stages[name]]
    while result[-1].base in stages:
        result.append(stages[result[-1].base])
    return result


@pytest.fixture(scope="module")
def dockerfile() -> Parsed:
    return parse()


def test_gpu_and_cpu_targets_on_pinned_bases(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    assert {"gpu", "cpu"} <= set(stages)
    gpu_base = chain(stages, "gpu")[-1].base
    cpu_base = chain(stages, "cpu")[-1].base
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-(base|runtime|cudnn\d*-runtime)-ubuntu22\.04", gpu_base)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", cpu_base)
    for stage in stages.values():
        if stage.base in stages:
            continue
        image, _, tag = stage.base.rpartition(":")
        assert image and tag and tag != "latest", f"{stage.name}: base image {stage.base} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{stage.name}: {stage.base} needs a version tag"


@pytest.mark.parametrize("target", ["gpu", "cpu"])
def test_target_runs_petcut_as_a_non_root_user(target: str, dockerfile: Parsed) -> None:
    _, stages = dockerfile
    final = stages[target]
    users = final.all("USER")
    assert users, f"{target}: no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{target} runs as root"
    assert json_cmd(final) == ["petcut", "serve", "--host", "0.0.0.0"], "the port comes from PORT / PETCUT_PORT"
    assert "8080" in " ".join(final.all("EXPOSE")).split()
    healthchecks = final.all("HEALTHCHECK")
    assert len(healthchecks) == 1 and "/health" in healthchecks[0] and "/ready" not in healthchecks[0]
    assert "curl" not in healthchecks[0] and "wget" not in healthchecks[0], "the image has neither"
    env = " ".join(args for stage in chain(stages, target) for args in stage.all("ENV"))
    assert "PETCUT_WEIGHTS_DIR=/opt/petcut/weights" in env.split()


@pytest.mark.parametrize("target", ["gpu", "cpu"])
def test_weights_are_baked_in_and_verified(target: str, dockerfile: Parsed) -> None:
    global_args, stages = dockerfile
    assert "WEIGHTS_FILE" in global_args and global_args["WEIGHTS_FILE"] == "", "WEIGHTS_FILE: optional"
    final = stages[target]
    sources = [args for args in final.all("COPY") if args.startswith("--from=") and "/opt/petcut/weights" in args]
    builders = {args.split()[0].removeprefix("--from=") for args in sources}
    assert len(builders) == 1
    build = stages[builders.pop()].text()
    assert re.search(r"petcut weights download --mode \"?\$MODE", build)
    assert "${WEIGHTS_FILE}" in build, "a local checkpoint can replace the download"
    assert build.index("petcut weights download") < build.index("petcut weights verify")
    assert re.search(r"chmod -R a\+r\S* \"?\$PETCUT_WEIGHTS_DIR", build), "downloads are 0600: make them readable"
    # and once more in the final image, as the service user: readable, intact, offline
    text = final.text()
    assert text.rindex("USER") < text.index("petcut weights verify")


@pytest.mark.parametrize("builder", ["gpu-build", "cpu-build", "cpu-serve-venv"])
def test_dependencies_are_pinned(builder: str, dockerfile: Parsed) -> None:
    _, stages = dockerfile
    build = stages[builder].text()
    assert "-c constraints.txt" in build and "pyproject.toml" in build
    assert "pip check" in build


def test_gpu_build_refuses_a_torch_the_driver_cannot_run(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    build = stages["gpu-build"]
    args = dict(arg.partition("=")[::2] for arg in build.all("ARG"))
    assert args.get("TORCH_CUDA_MAJOR") == "12"
    assert "/whl/cu12" in args.get("TORCH_INDEX_URL", "")
    assert "torch.version.cuda" in build.text()


def test_constraints_agree_with_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    constraints = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            constraints[normalise(name)] = version.strip()
    assert "torch" not in constraints and not any(name.startswith("nvidia-") for name in constraints)
    for requirement in pyproject["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        if normalise(name) in ("torch", "torchvision"):
            continue
        assert constraints.get(normalise(name)) == version, f"{name}: pyproject {version}, constraints differ"


def test_dockerignore_lets_every_copied_file_through(dockerfile: Parsed) -> None:
    _, stages = dockerfile
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()[:1] not in ("", "#")]
    assert rules[0] == "*", "an allow-list: everything else (.venv, .git, tests) stays out"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for stage in stages.values():
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _ = shlex.split(args)
            for source in sources:
                if source == "${WEIGHTS_FILE}":
                    continue
                assert source in allowed or source.split("/")[0] in allowed, f"{source} is ignored"
    assert "weights" in allowed, "WEIGHTS_FILE lives under weights/"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def json_cmd(stage: Stage) -> list[str]:
    commands = stage.all("CMD")
    assert commands, f"{stage.name}: no CMD"
    return json.loads(commands[-1])


# --- the HEALTHCHECK command, run for real --------------------------------------------------------
class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[Health]]]:
    handler = type("Handler", (Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def healthcheck(env: dict[str, str]) -> int:
    _, stages = parse()
    command = stages["gpu"].all("HEALTHCHECK")[0].split(" CMD ", 1)[1]
    assert command == stages["cpu"].all("HEALTHCHECK")[0].split(" CMD ", 1)[1]
    argv = json.loads(command)  # exec form: no shell needed in the image
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(argv, env={"PATH": path, **env}, capture_output=True, timeout=20).returncode


def test_healthcheck_passes_on_200_from_health(health_server: tuple[int, type[Health]]) -> None:
    port, _ = health_server
    assert healthcheck({"PORT": str(port)}) == 0
    assert healthcheck({"PETCUT_PORT": str(port), "PORT": "1"}) == 0, "PETCUT_PORT first, as petcut reads it"


def test_healthcheck_fails_on_503_and_when_nothing_listens(health_server: tuple[int, type[Health]]) -> None:
    port, handler = health_server
    handler.status = 503
    assert healthcheck({"PORT": str(port)}) != 0
    handler.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    free_port = server.server_address[1]
    server.server_close()
    assert healthcheck({"PORT": str(free_port)}) != 0


# --- the weights step, run with this checkout's petcut -------------------------------------------
def weights_step(tmp_path: Path, mode: str, content: bytes) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the cpu-build stage's weights RUN with WEIGHTS_FILE set (no network, no Docker)."""
    _, stages = parse()
    script = next(args for args in stages["cpu-build"].all("RUN") if "petcut weights verify" in args)
    copied = tmp_path / "weights-in"
    copied.mkdir()
    checkpoint = copied / "ckpt_local.pth"
    checkpoint.write_bytes(content)
    checkpoint.chmod(0o600)  # as a download leaves it
    weights_dir = tmp_path / "opt-weights"
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MODE": mode,
        "WEIGHTS_FILE": "weights/ckpt_local.pth",
        "PETCUT_WEIGHTS_DIR": str(weights_dir),
    }
    script = script.replace("/tmp/weights-in/", f"{copied}/")
    proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    return proc, weights_dir


def test_a_corrupt_weights_file_fails_the_build(tmp_path: Path) -> None:
    proc, _ = weights_step(tmp_path, "fast", b"not a checkpoint")
    assert proc.returncode != 0
    assert "md5" in proc.stderr


def test_a_local_weights_file_lands_readable_under_the_published_name(tmp_path: Path) -> None:
    # base-nightly has no published md5, so any bytes pass verify: this checks the copy and the chmod
    proc, weights_dir = weights_step(tmp_path, "base-nightly", b"weights")
    assert proc.returncode == 0, proc.stderr
    placed = weights_dir / "ckpt_base_nightly.pth"
    assert placed.read_bytes() == b"weights"
    assert placed.stat().st_mode & 0o044 == 0o044, "the service user (not root) must be able to read it"


def test_cpu_image_serves_on_openvino_without_torch(dockerfile: Parsed) -> None:
    """The IR is prepared in the build stage (which has torch); the final stage's venv has no torch."""
    _, stages = dockerfile
    build = stages["cpu-build"].text()
    assert build.index("petcut weights verify") < build.index("petcut weights prepare")
    assert "optional-dependencies']['torch']" in build
    final = stages["cpu"]
    venv_from = {args.split()[0].removeprefix("--from=") for args in final.all("COPY") if "/opt/venv" in args}
    assert venv_from == {"cpu-serve-venv"}
    serve = stages["cpu-serve-venv"].text()
    assert "optional-dependencies" not in serve and '! python -c "import torch"' in serve
    assert "transparent-background==1.3.4" in serve and "--no-deps" in serve
    assert "PETCUT_ENGINE=openvino" in final.text()
    gpu_build = stages["gpu-build"].text()
    assert "optional-dependencies']['torch']" in gpu_build, "the GPU image runs torch"
