"""docker/compose.yaml (and the GPU override) against the compose-spec JSON schema, plus what the
schema cannot say: start order on health, restart policies, one-off jobs, volumes, the proxy.

compose_spec.json is the compose-spec schema as the docker-compose 1.29.2 package on PyPI ships
it (compose/config/compose_spec.json, Apache-2.0), vendored so the test reads no network.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SCHEMA = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
ROLES = ("web", "inference", "worker", "trainer", "beat")


def _load(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_follow_the_compose_spec(name):
    errors = [e.message for e in jsonschema.Draft201909Validator(SCHEMA).iter_errors(_load(name))]
    assert errors == []


def test_the_schema_check_catches_a_mistake():
    broken = _load("compose.yaml")
    broken["services"]["web"]["depends_on"]["migrate"] = {"condition": "service_done"}
    assert list(jsonschema.Draft201909Validator(SCHEMA).iter_errors(broken))


def test_roles_start_on_health_and_restart():
    services = _load("compose.yaml")["services"]
    for role in ROLES:
        s = services[role]
        assert s["environment"]["COGLOOP_ROLE"] == role and s["restart"] == "unless-stopped"
        assert s["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert s["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in s or role == "beat"
    assert services["inference"]["depends_on"]["register"] == {"condition": "service_completed_successfully"}
    for job in ("migrate", "register"):
        assert services[job]["restart"] == "no"
    assert {"web", "inference"} <= set(services["proxy"]["depends_on"])
    assert all(
        services["proxy"]["depends_on"][s] == {"condition": "service_healthy"} for s in ("web", "inference")
    )


def test_volumes_for_the_model_store_and_static():
    spec = _load("compose.yaml")
    assert "models:/models" in spec["services"]["inference"]["volumes"]
    assert "static:/static" in spec["services"]["migrate"]["volumes"]
    assert "static:/srv/static:ro" in spec["services"]["proxy"]["volumes"]


def test_gpu_override_reserves_a_device_for_serving_and_training():
    gpu = _load("compose.gpu.yaml")["services"]
    for role in ("inference", "trainer"):
        devices = gpu[role]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
    assert gpu["inference"]["environment"]["SERVE_DEVICE"] == "cuda"


def test_proxy_routes_generation_to_inference_and_keeps_metrics_private():
    caddy = (DOCKER / "Caddyfile").read_text()
    blocks = dict(re.findall(r"handle (\S+) \{\s*(.*?)\s*\}", caddy, re.S))
    assert "inference:8000" in blocks["/api/v1/generate*"] and "inference:8000" in blocks["/v1/*"]
    assert blocks["/metrics*"] == "respond 404"
    assert "web:8000" in caddy


def test_dockerfile_caches_dependencies_before_the_code():
    lines = [
        line.split()[0:2]
        for line in (DOCKER / "Dockerfile").read_text().splitlines()
        if line[:4] in ("COPY", "RUN ")
    ]
    copies = [i for i, (op, _) in enumerate(lines) if op == "COPY"]
    assert lines[copies[0]][1] == "pyproject.toml" and lines[copies[1]][1] == "."
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)
