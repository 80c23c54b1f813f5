"""The Cloud Run service and Kubernetes manifests agree with petcut's settings and with each other.

Every number is read from the manifest's own environment, through ``load_settings`` (so a setting the
manifest leaves out counts with petcut's default): container concurrency against the admission capacity,
request timeouts against the app's deadlines, probe windows against a GPU cold start, the termination
grace period against the drain budget.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from petcut.config import Settings, env_names, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLOUD_RUN = DEPLOY / "cloudrun" / "service.yaml"
K8S = DEPLOY / "k8s"

COLD_START_S = 240  # a GPU cold start (image, CUDA init, weights, warmup) must fit the startup window
MARGIN_S = 30  # time left after the app's own deadlines for decoding, effects, encoding, storage
CLOUD_RUN_PROBE_CAP_S = 240  # Cloud Run: periodSeconds x failureThreshold <= 240, initialDelaySeconds <= 240
CLOUD_RUN_SIGKILL_S = 10  # Cloud Run sends SIGKILL 10 s after SIGTERM
CLOUD_RUN_RESERVED_ENV = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"}
#: besides petcut's settings: the project id the JSON log formatter puts into trace names
PLATFORM_ENV = {"GOOGLE_CLOUD_PROJECT"}
KNOWN_ENV = {name.upper() for field in Settings.model_fields for name in env_names(field)} | PLATFORM_ENV


# --- helpers ---------------------------------------------------------------------------------------
def k8s_objects() -> dict[str, dict[str, Any]]:
    """kind -> object, from deploy/k8s/*.yaml except the alternative HPA."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "hpa-queue-depth.yaml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in objects, f"two {doc['kind']} objects in deploy/k8s"
                objects[doc["kind"]] = doc
    return objects


def cloud_run() -> dict[str, Any]:
    return yaml.safe_load(CLOUD_RUN.read_text())


def only_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec["containers"]
    assert len(containers) == 1, "petcut runs as the one container of its pod"
    return containers[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        assert isinstance(item.get("value"), str), f"{item['name']}: env values must be strings (quote them)"
        env[item["name"]] = item["value"]
    return env


def settings_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What petcut would run with in that container (must not raise)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def memory_bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match[1]) * 1024 ** {None: 0, "Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4}[match[2]]


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def startup_window(probe: dict[str, Any]) -> int:
    """Seconds before a container that never gets ready is killed."""
    return probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)


def probe_path(container: dict[str, Any], probe: str) -> str:
    assert probe in container, f"{probe} missing"
    return container[probe]["httpGet"]["path"]


# --- Cloud Run -------------------------------------------------------------------------------------
def test_cloud_run_is_a_knative_service_that_gcloud_replace_takes() -> None:
    service = cloud_run()
    assert service["apiVersion"] == "serving.knative.dev/v1"
    assert service["kind"] == "Service"
    assert service["metadata"]["name"] == "petcut"
    only_container(service["spec"]["template"]["spec"])


def test_cloud_run_env_is_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    container = only_container(cloud_run()["spec"]["template"]["spec"])
    env = env_of(container)
    assert set(env) <= KNOWN_ENV, f"not petcut settings: {sorted(set(env) - KNOWN_ENV)}"
    assert not set(env) & CLOUD_RUN_RESERVED_ENV, "Cloud Run sets these itself and rejects them"
    settings = settings_for(env, monkeypatch)
    assert settings.mode == "base"
    assert settings.device == "cuda", "on the GPU service a missing GPU must be an error, not a slow CPU"
    assert settings.cors_origins or settings.cors_origin_regex, "the shop's origin must be allowed"


def test_cloud_run_concurrency_is_the_admission_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    template = cloud_run()["spec"]["template"]
    settings = settings_for(env_of(only_container(template["spec"])), monkeypatch)
    assert template["spec"]["containerConcurrency"] == 1 + settings.max_queue


def test_cloud_run_request_timeout_is_above_the_app_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = cloud_run()["spec"]["template"]["spec"]
    settings = settings_for(env_of(only_container(spec)), monkeypatch)
    timeout = spec["timeoutSeconds"]
    assert timeout > settings.queue_timeout_s + settings.inference_timeout_s + MARGIN_S
    assert timeout > settings.warmup_wait_s + settings.inference_timeout_s + MARGIN_S  # /warmup
    assert timeout <= 3600


def test_cloud_run_drain_fits_before_sigkill(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(env_of(only_container(cloud_run()["spec"]["template"]["spec"])), monkeypatch)
    assert settings.shutdown_timeout_s < CLOUD_RUN_SIGKILL_S


def test_cloud_run_probes() -> None:
    container = only_container(cloud_run()["spec"]["template"]["spec"])
    port = container["ports"][0]["containerPort"]
    assert port == 8080
    startup = container["startupProbe"]
    assert probe_path(container, "startupProbe") == "/ready"
    assert probe_path(container, "livenessProbe") == "/health"
    assert startup_window(startup) >= COLD_START_S
    assert startup["periodSeconds"] * startup["failureThreshold"] <= CLOUD_RUN_PROBE_CAP_S
    assert startup.get("initialDelaySeconds", 0) <= CLOUD_RUN_PROBE_CAP_S
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"].get("port", port) == port
        assert container[probe].get("timeoutSeconds", 1) <= container[probe].get("periodSeconds", 10)


def test_cloud_run_gpu_scales_to_zero() -> None:
    template = cloud_run()["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/minScale"] == "0"
    assert int(annotations["autoscaling.knative.dev/maxScale"]) >= 1
    assert annotations["run.googleapis.com/cpu-throttling"] == "false", "GPUs need CPU always allocated"
    assert annotations["run.googleapis.com/startup-cpu-boost"] == "true"
    assert template["spec"]["nodeSelector"] == {"run.googleapis.com/accelerator": "nvidia-l4"}
    limits = only_container(template["spec"])["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert cpu_cores(limits["cpu"]) >= 4, "Cloud Run GPUs need at least 4 CPUs"
    assert memory_bytes(limits["memory"]) >= 16 * 1024**3, "Cloud Run GPUs need at least 16 GiB"


# --- Kubernetes ------------------------------------------------------------------------------------
def test_k8s_has_deployment_service_and_hpa() -> None:
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= set(k8s_objects())


def test_k8s_env_is_real_settings_and_matches_cloud_run(monkeypatch: pytest.MonkeyPatch) -> None:
    container = only_container(k8s_objects()["Deployment"]["spec"]["template"]["spec"])
    env = env_of(container)
    assert set(env) <= KNOWN_ENV, f"not petcut settings: {sorted(set(env) - KNOWN_ENV)}"
    settings_for(env, monkeypatch)
    cloud_env = env_of(only_container(cloud_run()["spec"]["template"]["spec"]))
    k8s_only = {"PETCUT_PORT"}
    assert {k: v for k, v in env.items() if k not in k8s_only} == cloud_env, "the two platforms drifted apart"


def test_k8s_probes_and_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    container = only_container(pod)
    settings = settings_for(env_of(container), monkeypatch)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert probe_path(container, "startupProbe") == "/ready"
    assert probe_path(container, "readinessProbe") == "/ready"
    assert probe_path(container, "livenessProbe") == "/health"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert ports.get(port, port) == settings.port, f"{probe} probes port {port}"
    assert startup_window(container["startupProbe"]) >= COLD_START_S


def test_k8s_service_links_cannot_break_the_port_setting() -> None:
    # A Service named petcut injects PETCUT_PORT=tcp://IP:80 into pods, which petcut would read as its port.
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    assert pod.get("enableServiceLinks") is False


def test_k8s_termination_grace_covers_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    container = only_container(pod)
    settings = settings_for(env_of(container), monkeypatch)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_s = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    assert pod["terminationGracePeriodSeconds"] >= pre_stop_s + settings.shutdown_timeout_s + 3


def test_k8s_gpu_and_non_root() -> None:
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    container = only_container(pod)
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["nvidia.com/gpu"] == "1"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # a read-only root needs writable scratch space for /tmp and $HOME (numba, CUDA caches)
    if container["securityContext"].get("readOnlyRootFilesystem"):
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        assert {"/tmp", "/home/petcut"} <= mounts


def test_k8s_service_reaches_the_pods() -> None:
    objects = k8s_objects()
    deployment, service = objects["Deployment"], objects["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    names = {port["name"] for port in only_container(deployment["spec"]["template"]["spec"])["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in names


@pytest.mark.parametrize("name", ["hpa.yaml", "hpa-queue-depth.yaml"])
def test_k8s_hpa_targets_the_deployment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hpa = yaml.safe_load((K8S / name).read_text())
    deployment = k8s_objects()["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": deployment["metadata"]["name"]}  # fmt: skip
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    settings = settings_for(env_of(only_container(deployment["spec"]["template"]["spec"])), monkeypatch)
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Pods":
            assert metric["pods"]["metric"]["name"] == "petcut_inference_queue_depth"
            assert 0 < float(metric["pods"]["target"]["averageValue"]) <= settings.max_queue
        else:
            assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"


def test_kustomization_lists_existing_files_and_sets_the_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    image = only_container(k8s_objects()["Deployment"]["spec"]["template"]["spec"])["image"]
    assert image in {entry["name"] for entry in kustomization["images"]}


# --- one model mode everywhere -------------------------------------------------------------------
def test_the_baked_weights_match_the_configured_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    baked = re.search(r"^ARG MODE=(\S+)$", dockerfile, re.M)
    assert baked, "deploy/Dockerfile: ARG MODE=... default"
    cloudbuild = yaml.safe_load((DEPLOY / "cloudbuild.yaml").read_text())
    assert cloudbuild["substitutions"]["_MODE"] == baked[1]
    assert re.search(rf"^MODE=\$\{{MODE:-{re.escape(baked[1])}\}}$", (DEPLOY / "deploy.sh").read_text(), re.M)
    settings = settings_for(env_of(only_container(cloud_run()["spec"]["template"]["spec"])), monkeypatch)
    assert settings.mode == baked[1], "the service would look for weights the image does not have"


def test_release_sets_the_project_for_trace_links() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("manifest", ROOT / "deploy" / "cloudrun" / "manifest.py")
    assert spec is not None and spec.loader is not None
    manifest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(manifest)
    rendered = manifest.render(cloud_run(), service="petcut", project="shop-prod", region="europe-west4",
                               image="img:1", revision="petcut-abc", tag="t1", current=None)  # fmt: skip
    env = env_of(only_container(rendered["spec"]["template"]["spec"]))
    assert env["GOOGLE_CLOUD_PROJECT"] == "shop-prod"
