"""helm/probed: rendered with helm itself (helm-python-sdk embeds it), linted strictly against
Kubernetes 1.30, every core object validated by kubernetes-validate, the Prometheus Operator objects
checked field by field (kubernetes-validate only warns on CRDs), the rules by promtool.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT, by_kind, helm_module, missing, notes, render, run, tool

KUBE = "1.30.0"
SHARDED: dict[str, Any] = {
    "shards": 3,
    "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "existingSecret": "probed-secrets",
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/probed"}},
}
SHAPES: dict[str, dict[str, Any]] = {
    "default": {},
    "sharded": SHARDED,
    "deployment-with-pvc": {"persistence": {"enabled": True, "storageClass": "gp3"},
                            "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "existing-config": {"existingConfigMap": "my-probes", "existingConfigMapKey": "config.yaml",
                        "env": [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}}]},
}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def pod_spec(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (workload,) = kinds.get("Deployment", []) + kinds.get("StatefulSet", [])
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def config_maps(kinds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The chart's config ConfigMaps, without the dashboards' (labelled for the Grafana sidecar)."""
    return [c for c in kinds.get("ConfigMap", []) if "grafana_dashboard" not in c["metadata"]["labels"]]


def container(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (c,) = pod_spec(kinds)["containers"]
    return dict(c)


# ------------------------------------------------------------------------------------ lint, validate


@pytest.mark.parametrize("shape", ["default", "sharded"])
def test_helm_lint_strict(shape: str) -> None:
    helm = helm_module()
    report = helm.lint(str(CHART), SHAPES[shape], strict=True, kube_version=f"v{KUBE}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_every_core_object_validates_against_kubernetes_1_30(tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "pip install kubernetes-validate, in the test extras")
    files = []
    for shape, values in SHAPES.items():
        for template, docs in render(values).items():
            for i, doc in enumerate(docs):
                if doc["kind"] in OPERATOR_KINDS:
                    continue
                f = tmp_path / f"{shape}-{Path(template).stem}-{i}.yaml"
                f.write_text(yaml.safe_dump(doc))
                files.append(str(f))
    kinds = {yaml.safe_load(Path(f).read_text())["kind"] for f in files}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget",
            "NetworkPolicy", "PersistentVolumeClaim"} <= kinds
    result = run([validate, "-k", KUBE, "--strict", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(files), result.stdout


def test_kubernetes_validate_does_reject_a_wrong_object(tmp_path: Path) -> None:
    """The validation above can fail: an unknown field in a container is an error under --strict."""
    validate = tool("kubernetes-validate", "pip install kubernetes-validate, in the test extras")
    (deployment,) = by_kind(render())["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(deployment))
    assert run([validate, "-k", KUBE, "--strict", str(f)]).returncode != 0


# ------------------------------------------------------------------------------------ shapes


def test_one_shard_is_a_deployment_with_an_empty_dir() -> None:
    kinds = by_kind(render())
    assert "StatefulSet" not in kinds and "PersistentVolumeClaim" not in kinds
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    volumes = {v["name"]: v for v in pod_spec(kinds)["volumes"]}
    assert volumes["state"] == {"name": "state", "emptyDir": {}}
    env = {e["name"]: e.get("value") for e in container(kinds)["env"]}
    assert "PROBED_SHARDS" not in env and env["PROBED_STATE_DIR"] == "/var/lib/probed"
    assert [s["metadata"]["name"] for s in kinds["Service"]] == ["probed"]


def test_shards_make_a_statefulset_with_a_claim_template() -> None:
    kinds = by_kind(render(SHARDED))
    assert "Deployment" not in kinds
    (sts,) = kinds["StatefulSet"]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "state" not in {v["name"] for v in pod_spec(kinds)["volumes"]}
    env = {e["name"]: e.get("value") for e in container(kinds)["env"]}
    assert env["PROBED_SHARDS"] == "3" and "PROBED_SHARD_INDEX" not in env  # from the pod's ordinal
    headless = {s["metadata"]["name"]: s for s in kinds["Service"]}[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"


def test_replicas_per_probe_reach_every_shard_and_never_exceed_the_shards() -> None:
    env = {e["name"]: e.get("value") for e in container(by_kind(render({**SHARDED, "replicasPerProbe": 2})))["env"]}
    assert env["PROBED_SHARDS"] == "3" and env["PROBED_REPLICAS_PER_PROBE"] == "2"
    assert "copy" in notes({"shards": 3, "replicasPerProbe": 2})
    for values in ({}, SHARDED):  # the default (1) leaves probed's own default alone
        assert "PROBED_REPLICAS_PER_PROBE" not in {e["name"] for e in container(by_kind(render(values)))["env"]}
    helm = helm_module()
    for values in ({"shards": 2, "replicasPerProbe": 3}, {"replicasPerProbe": 2}):
        with pytest.raises(helm.errors.HelmRenderError, match=r"replicasPerProbe \(\d\) must be at most shards"):
            render(values)


def test_deployment_with_persistence_gets_a_claim_and_recreates() -> None:
    kinds = by_kind(render(SHAPES["deployment-with-pvc"]))
    (pvc,) = kinds["PersistentVolumeClaim"]
    assert pvc["spec"]["storageClassName"] == "gp3"
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in pod_spec(kinds)["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


@pytest.mark.parametrize("shape", ["default", "sharded"])
def test_pod_is_locked_down(shape: str) -> None:
    kinds = by_kind(render(SHAPES[shape]))
    pod = pod_spec(kinds)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container(kinds)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container(kinds)["resources"]["limits"]["memory"]


@pytest.mark.parametrize("shape", ["default", "sharded"])
def test_health_probes_and_listen_address(shape: str) -> None:
    c = container(by_kind(render(SHAPES[shape])))
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 9470, "protocol": "TCP"}]
    assert "--listen=0.0.0.0:9470" in c["args"] and c["args"][0] == "run"


def test_config_map_holds_the_config_and_its_checksum_rolls_the_pods() -> None:
    kinds = by_kind(render())
    (cm,) = config_maps(kinds)
    config = yaml.safe_load(cm["data"]["probes.yaml"])
    assert config["probes"][0]["target"] == "http://127.0.0.1:9470/-/healthy"
    mount = {m["name"]: m for m in container(kinds)["volumeMounts"]}["config"]
    assert container(kinds)["args"][1] == f"--config={mount['mountPath']}/probes.yaml"

    def checksum(values: dict[str, Any]) -> str:
        kinds = by_kind(render(values))
        (workload,) = kinds.get("Deployment", []) + kinds.get("StatefulSet", [])
        return str(workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    other = {"config": {"probes": [{"name": "other", "type": "tcp", "target": "127.0.0.1:5432"}]}}
    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(other)
    assert checksum({"shards": 2}) == checksum({})  # the config, not the rest, decides


def test_config_may_be_given_as_text() -> None:
    text = "probes:\n  - name: text\n    type: tcp\n    target: 127.0.0.1:6379\n"
    (cm,) = config_maps(by_kind(render({"config": text})))
    assert cm["data"]["probes.yaml"].strip() == text.strip()


def test_existing_config_map_and_secrets() -> None:
    kinds = by_kind(render(SHAPES["existing-config"]))
    assert not config_maps(kinds)
    volume = {v["name"]: v for v in pod_spec(kinds)["volumes"]}["config"]["configMap"]
    assert volume == {"name": "my-probes", "items": [{"key": "config.yaml", "path": "probes.yaml"}]}
    (workload,) = kinds["Deployment"]
    assert "checksum/config" not in (workload["spec"]["template"]["metadata"].get("annotations") or {})
    assert {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}} in container(kinds)["env"]

    sharded = by_kind(render(SHARDED))
    assert container(sharded)["envFrom"] == [{"secretRef": {"name": "probed-secrets"}}]
    (sa,) = sharded["ServiceAccount"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert pod_spec(sharded)["serviceAccountName"] == sa["metadata"]["name"]


def test_pdb_and_network_policy() -> None:
    default = by_kind(render())
    assert "NetworkPolicy" not in default
    (pdb,) = default["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    (policy,) = by_kind(render(SHARDED))["NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    (restricted,) = by_kind(render({"networkPolicy": {"enabled": True, "egress": egress}}))["NetworkPolicy"]
    assert restricted["spec"]["policyTypes"] == ["Ingress", "Egress"] and restricted["spec"]["egress"] == egress


# ------------------------------------------------------------------------------------ values schema


@pytest.mark.parametrize("values", [
    {"shards": "x"},
    {"shards": 0},
    {"replicasPerProbe": 0},
    {"replicasPerProbe": "2"},
    {"logFormat": "xml"},
    {"shard": 3},  # a typo of `shards`: unknown keys are refused
    {"image": {"pullPolicy": "Sometimes"}},
    {"serviceMonitor": {"interval": "thirty seconds"}},
    {"persistence": {"size": "lots"}},
])
def test_values_schema_rejects_a_wrong_value(values: dict[str, Any]) -> None:
    helm = helm_module()
    with pytest.raises(helm.errors.HelmValuesError):
        render(values)


def test_values_yaml_satisfies_its_own_schema() -> None:
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema", "pip install jsonschema, in the test extras")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))


# ------------------------------------------------------------------------------------ operator objects


def test_operator_objects_only_when_enabled() -> None:
    assert not OPERATOR_KINDS & set(by_kind(render()))
    assert set(by_kind(render(SHARDED))) >= OPERATOR_KINDS


@pytest.mark.parametrize("shape", ["sharded", "deployment-with-pvc"])
def test_service_monitor_selects_the_metrics_service_only(shape: str) -> None:
    kinds = by_kind(render(SHAPES[shape]))
    (sm,) = kinds["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["name"] and sm["metadata"]["namespace"] == "monitoring"
    spec = sm["spec"]
    assert set(spec) <= {"jobLabel", "endpoints", "selector", "namespaceSelector"}
    selected = [s for s in kinds["Service"]
                if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == ["probed"], "exactly one Service, or shards are scraped twice"
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
                                 "relabelings", "metricRelabelings"}
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
        assert endpoint["interval"].endswith("s") and endpoint["scrapeTimeout"].endswith("s")
    assert spec["namespaceSelector"] == {"matchNames": ["monitoring"]}
    # The job is the value of the Service's jobLabel label: "probed", the job the generated rules select.
    assert selected[0]["metadata"]["labels"][spec["jobLabel"]] == "probed"
    if shape == "sharded":
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_carries_the_rule_file_and_promtool_accepts_it(tmp_path: Path) -> None:
    promtool = tool("promtool", "apt-get install prometheus")
    (rule,) = by_kind(render(SHARDED))["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    groups = rule["spec"]["groups"]
    assert groups == yaml.safe_load((CHART / "files" / "probed-rules.yaml").read_text())["groups"]
    for group in groups:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and r["expr"]
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump({"groups": groups}))
    result = run([promtool, "check", "rules", str(f)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_additional_rule_groups_are_appended_and_checked(tmp_path: Path) -> None:
    promtool = tool("promtool", "apt-get install prometheus")
    extra = {"name": "mine", "rules": [{"record": "mine:probe_success:avg", "expr": "avg(probe_success)"}]}
    (rule,) = by_kind(render({"prometheusRule": {"enabled": True, "additionalGroups": [extra]}}))["PrometheusRule"]
    assert rule["spec"]["groups"][-1] == extra
    broken = {"name": "broken", "rules": [{"record": "x", "expr": "sum(("}]}
    (rule,) = by_kind(render({"prometheusRule": {"enabled": True, "additionalGroups": [broken]}}))["PrometheusRule"]
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    assert run([promtool, "check", "rules", str(f)]).returncode != 0, "promtool must catch a broken expression"


# ------------------------------------------------------------------------------------ dashboards, notes


def test_dashboards_become_labelled_config_maps(tmp_path: Path) -> None:
    bundled = sorted((CHART / "dashboards").glob("*.json"))
    names = {c["metadata"]["name"] for c in by_kind(render()).get("ConfigMap", [])}
    assert len([n for n in names if "-dashboard-" in n]) == len(bundled)

    chart = tmp_path / "probed"
    shutil.copytree(CHART, chart)
    dashboard = {"title": "probed test", "panels": [], "schemaVersion": 39}
    (chart / "dashboards" / "Probe_Overview.json").write_text(json.dumps(dashboard))
    maps = [c for c in by_kind(render({}, chart))["ConfigMap"] if "-dashboard-" in c["metadata"]["name"]]
    mine = [c for c in maps if c["metadata"]["name"] == "probed-dashboard-probe-overview"]
    assert len(mine) == 1, [c["metadata"]["name"] for c in maps]
    assert mine[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(mine[0]["data"]["Probe_Overview.json"]) == dashboard
    assert not [c for c in by_kind(render({"dashboards": {"enabled": False}}, chart)).get("ConfigMap", [])
                if "-dashboard-" in c["metadata"]["name"]]


def test_notes_render_in_both_shapes() -> None:
    assert "one Deployment replica" in notes()
    sharded = notes(SHARDED)
    assert "StatefulSet of 3 shards" in sharded and "ServiceMonitor probed" in sharded
    assert "/-/reload" in notes(SHAPES["existing-config"])


# ------------------------------------------------------------------------------------ rules drift

RULES_FILE = CHART / "files" / "probed-rules.yaml"


def generated_rules(tmp_path: Path) -> str:
    """`probed rules` on the chart's default config (values.yaml `config`, as the ConfigMap holds it)."""
    (cm,) = config_maps(by_kind(render()))
    config = tmp_path / "chart-default-config.yaml"
    config.write_text(cm["data"]["probes.yaml"])
    result = run([sys.executable, "-m", "probed", "rules", "--no-env", "--config", str(config)], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.replace(f"from {config}.", "from the chart's default config (values.yaml `config`).")


def test_prometheus_rule_carries_what_probed_rules_generates(tmp_path: Path) -> None:
    """files/probed-rules.yaml is `probed rules` on the chart's default config. After changing the
    generator or that config: PROBED_REGENERATE=1 pytest tests/deploy/test_helm_chart.py -k generates"""
    text = generated_rules(tmp_path)
    if os.environ.get("PROBED_REGENERATE") == "1":
        RULES_FILE.write_text(text)
    generated = yaml.safe_load(text)["groups"]
    assert generated, "probed rules produced no groups"
    (rule,) = by_kind(render({"prometheusRule": {"enabled": True}}))["PrometheusRule"]
    assert rule["spec"]["groups"] == generated, (
        "helm/probed/files/probed-rules.yaml has drifted from `probed rules`: regenerate it with "
        "PROBED_REGENERATE=1 pytest tests/deploy/test_helm_chart.py -k generates"
    )


def test_chart_dashboards_are_the_bundled_ones() -> None:
    """helm/probed/dashboards/ mirrors grafana/dashboards/ (what `probed dashboards` writes). To sync:
    PROBED_REGENERATE=1 pytest tests/deploy/test_helm_chart.py -k dashboards_are"""
    source = ROOT / "grafana" / "dashboards"
    target = CHART / "dashboards"
    if os.environ.get("PROBED_REGENERATE") == "1":
        for stale in target.glob("*.json"):
            stale.unlink()
        for f in source.glob("*.json"):
            shutil.copyfile(f, target / f.name)
    want = {f.name: f.read_bytes() for f in source.glob("*.json")}
    have = {f.name: f.read_bytes() for f in target.glob("*.json")}
    assert have == want, (
        "helm/probed/dashboards/ differs from grafana/dashboards/: sync it with "
        "PROBED_REGENERATE=1 pytest tests/deploy/test_helm_chart.py -k dashboards_are"
    )
    maps = [c for c in by_kind(render()).get("ConfigMap", []) if "grafana_dashboard" in c["metadata"]["labels"]]
    assert sorted(name for c in maps for name in c["data"]) == sorted(want)
