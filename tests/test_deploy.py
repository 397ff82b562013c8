"""The Dockerfile and the Kubernetes manifests deploy the service as written: valid against the Kubernetes schemas
(offline, kubernetes-validate), a writable volume for every folder the service writes to under a read-only root
filesystem (Settings.writable_folders, with the image's own environment), and secrets taken from a Secret."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from service import config
from service.config import PROJECT_ROOT, Settings

MANIFESTS = sorted((PROJECT_ROOT / "deploy" / "k8s").glob("*.yaml"))
KUBERNETES = "1.37.0"  # the schemas kubernetes-validate ships; offline
# What `kubectl create secret generic mscc-cds` (deploy/k8s/README.md) holds, stood in for.
SECRET_STAND_INS = {
    "database-url": "postgresql+psycopg://mscc:stand-in@postgres:5432/mscc",
    "patient-hash-salt": "0" * 32,
    "operator-token": "t" * 32,
}
SECRET_SETTINGS = {"MSCC_DATABASE_URL", "MSCC_PATIENT_HASH_SALT", "MSCC_OPERATOR_TOKEN"}
# The README's production `docker run` adds these to the image's environment.
DOCKER_RUN_ENV = {"MSCC_ISSUERS_FILE": "/etc/mscc/issuers.yaml", "MSCC_PUBLIC_BASE_URL": "https://cds.example.org"}


class Image:
    """What the Dockerfile gives a container: its environment, working folder and volumes."""

    def __init__(self, path: Path) -> None:
        parsed = DockerfileParser(str(path))
        self.env: dict[str, str] = dict(parsed.envs)
        instructions = [(i["instruction"], i["value"]) for i in parsed.structure]
        self.workdir = PurePosixPath([v for k, v in instructions if k == "WORKDIR"][-1])
        self.volumes: list[PurePosixPath] = []
        for key, value in instructions:
            if key == "VOLUME":
                folders = json.loads(value) if value.lstrip().startswith("[") else value.split()
                self.volumes += [PurePosixPath(f) for f in folders]


IMAGE = Image(PROJECT_ROOT / "Dockerfile")


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every workload in the manifests."""
    found = []
    for _, doc in documents():
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
            pod = doc["spec"]["template"]["spec"]
            found += [(pod, container) for container in pod["containers"]]
    return found


def folders_written(env: dict[str, str], workdir: PurePosixPath, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The folders the service writes to in a container with this environment (its checkout at `workdir`)."""
    for name in [n for n in os.environ if n.startswith("MSCC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("MSCC_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(config, "PROJECT_ROOT", Path(workdir))  # the defaults under var/ are the image's
    folders: dict[str, Any] = {k: PurePosixPath(v) for k, v in Settings().writable_folders().items()}
    folders["TMPDIR"] = PurePosixPath(env.get("TMPDIR", "/tmp"))
    return folders


FIELD_STAND_INS = {"metadata.name": "mscc-cds-7d9c5b-x2k4q"}  # what the downward API gives a pod


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The image's environment overlaid with the container's, `$(NAME)` expanded as Kubernetes does; a Secret's
    value and a pod field by their stand-ins."""
    env = dict(IMAGE.env)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"])
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = SECRET_STAND_INS[item["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[item["name"]] = FIELD_STAND_INS[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def unwritable(pod: dict[str, Any], container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each setting whose folder has no writable volume under the container's read-only root."""
    if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
        return []
    volumes = {v["name"] for v in pod.get("volumes", [])}
    writable = [
        PurePosixPath(m["mountPath"])
        for m in container.get("volumeMounts", [])
        if not m.get("readOnly") and m["name"] in volumes
    ]
    written = folders_written(container_env(container), IMAGE.workdir, monkeypatch)
    return [
        f"{setting} ({folder})"
        for setting, folder in written.items()
        if not any(folder.is_relative_to(mount) for mount in writable)
    ]


def test_there_are_manifests_with_a_workload() -> None:
    assert MANIFESTS
    assert containers()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises, naming the field, when not


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    _, container = containers()[0]
    broken = copy.deepcopy(next(doc for _, doc in documents() if doc["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = container.get("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_every_folder_the_service_writes_to_is_a_writable_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    for pod, container in containers():
        assert unwritable(pod, container, monkeypatch) == [], container["name"]


def test_a_manifest_without_the_journal_volume_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment.yaml of before: read-only root, the journal in the image's /app/var."""
    pod, container = copy.deepcopy(containers()[0])
    container["env"] = [e for e in container["env"] if e["name"] != "MSCC_SPOOL_DIR"]
    assert unwritable(pod, container, monkeypatch) == ["MSCC_SPOOL_DIR (/app/var/spool)"]


def test_the_service_settings_hold_and_secrets_come_from_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, container in containers():
        given = {item["name"]: item for item in container["env"]}
        assert given.keys() >= SECRET_SETTINGS  # the operator token too: /evaluate is closed in production without
        for name in SECRET_SETTINGS:
            assert "secretKeyRef" in given[name].get("valueFrom", {}), name
        env = container_env(container)
        folders_written(env, IMAGE.workdir, monkeypatch)  # production settings as written validate


def test_every_folder_the_image_writes_to_is_a_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker run --read-only` works as it is: the image's defaults write only under its VOLUMEs."""
    written = folders_written(IMAGE.env | DOCKER_RUN_ENV, IMAGE.workdir, monkeypatch)
    assert set(written) == {"MSCC_SPOOL_DIR", "MSCC_DATABASE_URL", "MSCC_REPLAY_CHECK", "TMPDIR"}
    for setting, folder in written.items():
        assert any(folder.is_relative_to(volume) for volume in IMAGE.volumes), f"{setting} ({folder})"


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == name]


def test_replicas_can_die_at_any_moment_as_written() -> None:
    """Issue 25: at least two replicas, a disruption budget, autoscaling, readiness on /readyz, each decision row in
    PostgreSQL before the answer, and the journal on a volume every replica mounts, each in its own folder."""
    [deployment] = kind("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    [budget] = kind("PodDisruptionBudget")
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["spec"]["minAvailable"] >= 1
    [autoscaler] = kind("HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert autoscaler["spec"]["minReplicas"] >= 2
    pod, container = containers()[0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = container_env(container)
    assert env["MSCC_DECISION_WRITE"] == "database"
    root, journal = PurePosixPath(env["MSCC_SPOOL_SHARED_ROOT"]), PurePosixPath(env["MSCC_SPOOL_DIR"])
    assert journal.parent == root  # this pod's folder, beside the other replicas'
    assert journal.name == FIELD_STAND_INS["metadata.name"]
    [mount] = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == root]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [claim] = [
        c
        for c in kind("PersistentVolumeClaim")
        if c["metadata"]["name"] == volume["persistentVolumeClaim"]["claimName"]
    ]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # outlives the pod; every replica mounts it
