"""The KubeRay manifests (deploy/kuberay/), checked offline against KubeRay's ray.io/v1 API:
the schema below is an extract, written from the facts of KubeRay v1.7.0's CRDs
(ray-operator/config/crd/bases/ray.io_rayclusters.yaml, ray.io_rayjobs.yaml and
apis/ray/v1/rayjob_types.go): the required fields, the types and enums of every field
these manifests use. The image, resources and token they name are checked against the
launchers and the lock."""
from __future__ import annotations

import jsonschema
import pytest
import yaml

from pipelines import remote
from pipelines.registry import JOBS
from tests.conftest import REPO_ROOT
from tests.deploy.test_image import lock_pins

DEPLOY = REPO_ROOT / "deploy" / "kuberay"
INT32 = {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1}
QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string",
                                            "pattern": r"^[0-9.]+([KMGTPE]i?|m)?$"}]}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
CONTAINER = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"}, "image": {"type": "string"},
    "resources": {"type": "object", "additionalProperties": False, "properties": {
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY}}},
    "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"],
                                         "properties": {"containerPort": INT32,
                                                        "name": {"type": "string"}}}}}}
POD_TEMPLATE = {"type": "object", "properties": {"spec": {
    "type": "object", "required": ["containers"], "properties": {
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
        "serviceAccountName": {"type": "string"}, "nodeSelector": STRINGS,
        "restartPolicy": {"type": "string"}, "tolerations": {"type": "array"}}}}}
CLUSTER_SPEC = {"type": "object", "required": ["headGroupSpec"], "properties": {
    "rayVersion": {"type": "string"},
    "enableInTreeAutoscaling": {"type": "boolean"},
    "headServiceAnnotations": STRINGS,
    "authOptions": {"type": "object", "additionalProperties": False, "properties": {
        "mode": {"enum": ["disabled", "token"]}, "secretName": {"type": "string"},
        "enableK8sTokenAuth": {"type": "boolean"}}},
    "headGroupSpec": {"type": "object", "required": ["template"], "properties": {
        "serviceType": {"type": "string"}, "rayStartParams": STRINGS,
        "template": POD_TEMPLATE}},
    "workerGroupSpecs": {"type": "array", "items": {
        "type": "object", "required": ["groupName", "maxReplicas", "minReplicas", "template"],
        "properties": {"groupName": {"type": "string"}, "replicas": INT32,
                       "minReplicas": INT32, "maxReplicas": INT32,
                       "rayStartParams": STRINGS, "template": POD_TEMPLATE}}}}}
RAY_JOB_SPEC = {"type": "object", "properties": {
    "entrypoint": {"type": "string"}, "clusterSelector": STRINGS,
    "rayClusterSpec": CLUSTER_SPEC,
    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
    "backoffLimit": INT32, "activeDeadlineSeconds": INT32,
    "shutdownAfterJobFinishes": {"type": "boolean"}, "submitterPodTemplate": POD_TEMPLATE}}


def _resource(kind: str, spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": kind},
                           "metadata": {"type": "object", "required": ["name"]},
                           "spec": spec}}


SCHEMAS = {"RayCluster": _resource("RayCluster", CLUSTER_SPEC),
           "RayJob": _resource("RayJob", RAY_JOB_SPEC)}


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("name, kind", [("raycluster.yaml", "RayCluster"),
                                        ("rayjob.yaml", "RayJob")])
def test_manifests_follow_the_ray_io_v1_schema(name, kind):
    doc = load(name)
    assert doc["kind"] == kind
    jsonschema.validate(doc, SCHEMAS[kind])


def test_the_schema_extract_refuses_what_kuberay_refuses():
    doc = load("raycluster.yaml")
    broken = yaml.safe_load(yaml.safe_dump(doc))
    del broken["spec"]["workerGroupSpecs"][0]["maxReplicas"]
    with pytest.raises(jsonschema.ValidationError, match="'maxReplicas' is a required"):
        jsonschema.validate(broken, SCHEMAS["RayCluster"])
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["authOptions"]["mode"] = "password"
    with pytest.raises(jsonschema.ValidationError, match="'password' is not one of"):
        jsonschema.validate(broken, SCHEMAS["RayCluster"])


def _containers(template: dict) -> list[dict]:
    return template["spec"]["containers"]


def test_cluster_runs_the_image_with_token_auth_and_cpu_and_gpu_workers():
    spec = load("raycluster.yaml")["spec"]
    assert spec["rayVersion"] == lock_pins(REPO_ROOT / "requirements.lock")["ray"]
    image = remote.default_image("PROJECT", "REGION")
    head = _containers(spec["headGroupSpec"]["template"])[0]
    assert head["image"] == image
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265}  # GCS, Jobs API
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    cpu = _containers(groups["cpu"]["template"])[0]
    gpu = _containers(groups["gpu"]["template"])[0]
    assert cpu["image"] == image and gpu["image"] == f"{image}-gpu"
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for c in (head, cpu, gpu):
        assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]
    # the token: KubeRay's auth (RAY_AUTH_TOKEN from the Secret's auth_token key), never a
    # value in the manifest
    assert spec["authOptions"] == {"mode": "token", "secretName": "mlbatch-ray-token"}
    assert "RAY_AUTH_TOKEN" not in (DEPLOY / "raycluster.yaml").read_text().split("#")[0]


def test_ray_job_runs_a_pipeline_ray_job_on_that_cluster():
    job = load("rayjob.yaml")["spec"]
    cluster = load("raycluster.yaml")["metadata"]["name"]
    assert job["clusterSelector"] == {"ray.io/cluster": cluster}
    argv = job["entrypoint"].split()
    assert argv[:2] == ["python", "-m"] and JOBS[argv[2]].kind == "ray"
    assert all(argv[argv.index(f) + 1].startswith("gs://") for f in ("--features", "--output"))
    submitter = _containers(job["submitterPodTemplate"])[0]
    assert submitter["image"] == remote.default_image("PROJECT", "REGION")
