"""The container image recipe, checked offline (no registry is reachable, so nothing is
built here): the Dockerfile's stages, base image, what it installs, its entrypoint and
working directory against the lock, the launchers and the KFP spec."""
from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from pipelines import remote
from tests.conftest import REPO_ROOT

BEAM_BOOT = "/opt/apache/beam/boot"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuations joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, "a continuation line runs off the end"
    return out


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (global ARG defaults substituted in FROM)."""
    args, out, current = {}, {}, None
    for word, rest in instructions(path):
        if word == "ARG" and current is None:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            current = name.strip()
            out[current] = [("FROM", image)]
        elif current is not None:
            out[current].append((word, rest))
    out["__args__"] = [("ARG", f"{k}={v}") for k, v in args.items()]
    return out


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.!+]+", version), f"{path.name}: {line!r} is no pin"
            pins[name.lower()] = version
    return pins


@pytest.fixture(scope="module")
def dockerfile():
    return stages(REPO_ROOT / "Dockerfile")


def test_two_stages_from_beams_sdk_image_at_the_locked_beam_version(dockerfile):
    beam = lock_pins(REPO_ROOT / "requirements.lock")["apache-beam"]
    want = f"apache/beam_python3.11_sdk:{beam}"
    assert beam == "2.77.0"
    assert [k for k in dockerfile if k != "__args__"] == ["build", "runtime"]
    assert dockerfile["build"][0] == dockerfile["runtime"][0] == ("FROM", want)
    assert ("ARG", "LOCK=requirements.lock") in dockerfile["__args__"]


def test_the_lock_is_installed_exactly_and_nothing_else(dockerfile):
    runs = [r for w, r in dockerfile["build"] if w == "RUN"]
    installs = [c.strip() for r in runs for c in r.split("&&") if " install " in f" {c} "]
    assert installs == [
        "python -m pip install --no-cache-dir uv==0.13.9",  # the installer, pinned
        "python -m uv pip install --no-cache --no-deps --python /opt/mlbatch-venv/bin/python "
        "-r /tmp/requirements.lock",
        "python -m uv pip install --no-cache --no-deps --python /opt/mlbatch-venv/bin/python "
        "/src/mlbatch"]
    assert ("COPY", "${LOCK} /tmp/requirements.lock") in dockerfile["build"]
    # the runtime stage installs no Python package: it takes the build stage's environment
    runtime = dockerfile["runtime"]
    assert not [r for w, r in runtime if w == "RUN" and "pip" in r]
    assert ("COPY", "--from=build /opt/mlbatch-venv /opt/mlbatch-venv") in runtime
    # every line of both locks is an exact pin (lock_pins refuses anything else)
    assert len(lock_pins(REPO_ROOT / "requirements.lock")) > 100


def test_entrypoint_workdir_and_environment_match_the_launchers(dockerfile):
    runtime = dockerfile["runtime"]
    assert [json.loads(r) for w, r in runtime if w == "ENTRYPOINT"] == [[BEAM_BOOT]]
    assert [r for w, r in runtime if w == "WORKDIR"] == [remote.IMAGE_WORKDIR]
    env = dict(kv.split("=", 1) for w, r in runtime if w == "ENV" for kv in shlex.split(r))
    assert env["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"  # boot keeps this venv
    assert env["PATH"].startswith("/opt/mlbatch-venv/bin:")
    # KubeRay's login shells (bash -l) rebuild PATH from /etc/profile: the venv stays first
    assert ("RUN", "echo 'export PATH=/opt/mlbatch-venv/bin:$PATH' > "
                   "/etc/profile.d/mlbatch-venv.sh") in runtime
    assert ("COPY", f". {remote.IMAGE_WORKDIR}") in runtime  # the repository root
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data", "out", "tests"} <= set(ignored)


def test_cloud_build_pushes_the_image_the_launchers_default_to():
    doc = yaml.safe_load((REPO_ROOT / "deploy" / "cloudbuild.yaml").read_text())
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    subs = doc["substitutions"]
    assert subs["_VERSION"] == version == remote.VERSION
    name = doc["images"][0]
    resolved = (name.replace("${_REGION}", "europe-west4").replace("${PROJECT_ID}", "p-1")
                .replace("${_VERSION}", version).replace("${_VARIANT}", ""))
    assert resolved == remote.default_image("p-1", "europe-west4")
    build = doc["steps"][0]["args"]
    assert build[build.index("--tag") + 1] == name
    assert build[build.index("--build-arg") + 1] == "LOCK=${_LOCK}"
    assert subs["_LOCK"] == "requirements.lock"


def test_the_gpu_lock_is_the_cpu_lock_plus_cuda_only():
    cpu = lock_pins(REPO_ROOT / "requirements.lock")
    gpu = lock_pins(REPO_ROOT / "requirements-gpu.lock")
    assert {k: v for k, v in gpu.items() if k in cpu} == cpu  # every CPU pin, unchanged
    added = {k: v for k, v in gpu.items() if k not in cpu}
    assert added["jax-cuda12-plugin"] == added["jax-cuda12-pjrt"] == cpu["jax"] == "0.10.2"
    assert all(k.startswith(("nvidia-", "jax-cuda12-")) for k in added), sorted(added)
