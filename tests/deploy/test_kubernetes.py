"""deploy/kubernetes: every manifest validates against the Kubernetes schemas (strict, so a
misspelt field fails), and the objects fit together as SPEC §13 asks."""

from __future__ import annotations

import copy
import socket
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import KUBERNETES, load_manifests, load_yaml

# The oldest Kubernetes we support (autoscaling/v2, policy/v1 and the sleep-free preStop
# are all older) and the newest the validator ships schemas for.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

TMP = "/tmp"  # noqa: S108 - the container path, not a file this test writes
MANIFESTS = load_manifests()
DEPLOYMENT = MANIFESTS["Deployment/keel"]
JOB = MANIFESTS["Job/keel-migrate"]
CONFIG = MANIFESTS["ConfigMap/keel"]["data"]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _validate(document: dict[str, Any], version: str) -> None:
    # SchemaNotFoundError (an unknown kind or apiVersion) propagates: that is a failure too.
    kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_validates_against_the_kubernetes_schema(name: str, version: str) -> None:
    _validate(MANIFESTS[name], version)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "eighty"),
        (("spec", "template", "spec", "containers", 0, "securityContext", "readOnlyRootFS"), True),
        (("spec", "template", "spec", "terminationGracePeriod"), 45),
    ],
    ids=["wrong-type", "misspelt-field", "unknown-field"],
)
def test_the_validator_rejects_a_broken_manifest(path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(DEPLOYMENT)
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken, KUBERNETES_VERSIONS[-1])


def test_validation_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI reaches only package registries: the schemas must come from the installed package.
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the validator tried to use the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for document in MANIFESTS.values():
        _validate(document, KUBERNETES_VERSIONS[-1])


def test_kustomization_lists_every_manifest_but_the_one_off_job() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"migrate-job.yaml"}
    assert [image["name"] for image in kustomization["images"]] == ["keel"]


def test_probes_use_health_for_liveness_and_ready_for_readiness() -> None:
    container = _container(DEPLOYMENT)
    port_names = {port["name"] for port in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("workload", [DEPLOYMENT, JOB], ids=["deployment", "migrate-job"])
def test_pods_run_locked_down(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = _container(workload)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsUser"] == pod["securityContext"]["runAsUser"]
    assert set(container["resources"]) == {"requests", "limits"}
    # A read-only root needs writable volumes where Keel writes: the data dir and /tmp.
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert {CONFIG["KEEL_DATA_DIR"], TMP} <= set(mounts)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert all("emptyDir" in volumes[name] for name in mounts.values())


@pytest.mark.parametrize("workload", [DEPLOYMENT, JOB], ids=["deployment", "migrate-job"])
def test_configuration_comes_from_the_configmap_and_the_secret(workload: dict[str, Any]) -> None:
    container = _container(workload)
    assert container["envFrom"] == [{"configMapRef": {"name": "keel"}}]
    env = {item["name"]: item for item in container["env"]}
    assert env["KEEL_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "keel"
    assert env["KEEL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "keel"
    assert all("value" not in item for item in container["env"]), "no literal values in env"
    # Nothing secret in the ConfigMap.
    assert not {"KEEL_SECRET_KEY", "KEEL_DATABASE_URL", "KEEL_REDIS_URL"} & set(CONFIG)


def test_grace_period_outlasts_the_pre_stop_pause_and_the_shutdown_timeout() -> None:
    pod = DEPLOYMENT["spec"]["template"]["spec"]
    pre_stop = _container(DEPLOYMENT)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    budget = int(pre_stop[1]) + int(CONFIG["KEEL_SHUTDOWN_TIMEOUT_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > budget


def test_the_job_migrates_and_the_deployment_does_not() -> None:
    assert _container(JOB)["command"] == ["python", "-m", "keel", "migrate"]
    assert JOB["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert _container(JOB)["image"] == _container(DEPLOYMENT)["image"]
    assert CONFIG["KEEL_AUTO_MIGRATE"] == "false"
    assert CONFIG["KEEL_ENV"] == "production"


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    pod_labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = MANIFESTS["Service/keel"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert {port["targetPort"] for port in service["ports"]} <= {
        port["name"] for port in _container(DEPLOYMENT)["ports"]
    }
    pdb = MANIFESTS["PodDisruptionBudget/keel"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = MANIFESTS["HorizontalPodAutoscaler/keel"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "keel"}
    # Two pods at least, and the PDB never blocks a drain by itself.
    assert hpa["minReplicas"] >= 2
    assert pdb["maxUnavailable"] < hpa["minReplicas"]
    # The autoscaler owns the replica count; a `replicas` field would reset it on every apply.
    assert "replicas" not in DEPLOYMENT["spec"]
    # CPU utilisation is measured against requests.
    assert "cpu" in _container(DEPLOYMENT)["resources"]["requests"]


def test_settings_in_the_configmap_are_real_keel_settings() -> None:
    from keel.settings import Settings

    known = {f"KEEL_{name.upper()}" for name in Settings.model_fields}
    assert set(CONFIG) <= known
    # The grace period above is checked against the drain timeout the pods really use.
    timeout = Settings.model_fields["shutdown_timeout_seconds"]
    assert float(CONFIG["KEEL_SHUTDOWN_TIMEOUT_SECONDS"]) == timeout.default
    assert int(CONFIG["KEEL_MAX_BODY_BYTES"]) == Settings.model_fields["max_body_bytes"].default


def test_manifests_are_plain_yaml_documents() -> None:
    for path in KUBERNETES.glob("*.yaml"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(documents) == 1, path.name
