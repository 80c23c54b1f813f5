"""The monitoring outputs: up to date with their one source, complete, and consistent with each other, with
petcut's metrics and with the runbook (no external tool needed; test_tools.py runs promtool and amtool)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from petcut.observability import METRICS
from tests.monitoring.tools import (
    CLOUD_MONITORING,
    DASHBOARD,
    MONITORING,
    PROMETHEUS_RULE,
    ROOT,
    alert_rules,
    generator,
    github_anchors,
    rule_groups,
)

#: what the issue asks for: alert → severity
EXPECTED = {
    "PetcutModelNotReady": "critical",
    "PetcutWarmupFailed": "critical",  # /warmup 500
    "PetcutWarmupPartial": "warning",  # /warmup 206: never pages
    "PetcutProcessingErrors": "critical",
    "PetcutShedding": "warning",
    "PetcutSlowInference": "warning",
    "PetcutModelDegraded": "critical",
    "PetcutModelPoisoned": "critical",
    "PetcutTargetDown": "critical",
}
#: series exported by collectors (not in METRICS), and the process collector's
COLLECTED = {
    "petcut_cache_requests_total",
    "petcut_cache_size_bytes",
    "petcut_gpu_memory_bytes",
    "petcut_warmup_last_passed",
    "process_resident_memory_bytes",
}


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(MONITORING / "generate.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_check_names_a_stale_or_extra_output(tmp_path: Path) -> None:
    generate = generator()
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.stale(tmp_path) == []
    rules = tmp_path / generate.RULES
    rules.write_text(rules.read_text().replace("for: 10m", "for: 1h"))
    extra = tmp_path / generate.CLOUD_MONITORING / "petcut-old-alert.yaml"
    extra.write_text("displayName: gone\n")
    assert generate.stale(tmp_path) == [generate.RULES, f"{generate.CLOUD_MONITORING}/petcut-old-alert.yaml"]


def test_every_alert_the_issue_asks_for_with_its_severity_and_annotations() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules()}
    assert {name: rule["labels"]["severity"] for name, rule in alerts.items()} == EXPECTED
    for name, rule in alerts.items():
        notes = rule["annotations"]
        assert notes["summary"].strip(), name
        assert "Check first:" in notes["description"], name
        assert rule["labels"]["service"] == "petcut", name


def test_runbook_links_point_at_sections_that_exist() -> None:
    pages: dict[str, set[str]] = {}
    for rule in alert_rules():
        link = rule["annotations"]["runbook"]
        path, _, anchor = link.partition("#")
        assert anchor, link
        page = ROOT / path
        assert page.is_file(), link
        anchors = pages.setdefault(path, github_anchors(page.read_text()))
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {path}"
    # and the runbook's own links to its sections resolve too
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for anchor in re.findall(r"\]\(#([\w-]+)\)", runbook):
        assert anchor in github_anchors(runbook), anchor


def test_runbook_base_makes_absolute_links(tmp_path: Path) -> None:
    generate = generator()
    base = "https://git.example.com/petcut/blob/main/"
    assert generate.main(["--out", str(tmp_path), "--runbook-base", base]) == 0
    rules = yaml.safe_load((tmp_path / generate.RULES).read_text())
    links = [r["annotations"]["runbook"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert links and all(link.startswith(f"{base}docs/runbook.md#") for link in links)


def test_prometheus_rule_holds_the_same_groups() -> None:
    doc = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"] == "petcut"
    assert doc["spec"]["groups"] == rule_groups()


def test_recording_rules_cover_rate_error_ratio_and_latency_quantiles_per_route() -> None:
    records = {rule["record"]: rule["expr"] for group in rule_groups() for rule in group["rules"] if "record" in rule}
    assert "job_route:petcut_http_requests:rate5m" in records
    assert "job_route:petcut_http_errors:ratio_rate5m" in records
    for q in ("50", "95", "99"):
        expr = records[f"job_route:petcut_http_request_duration_seconds:p{q}_5m"]
        assert f"histogram_quantile(0.{q}" in expr and "route" in expr


def test_cloud_monitoring_policies_one_per_alert_routed_by_severity() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules()}
    policies = {}
    for path in sorted(CLOUD_MONITORING.glob("*.yaml")):
        policy = yaml.safe_load(path.read_text())
        condition = policy["conditions"][0]["conditionPrometheusQueryLanguage"]
        policies[condition["alertRule"]] = policy
        assert set(policy) >= {"displayName", "severity", "combiner", "conditions", "documentation"}
        assert re.fullmatch(r"\d+s", condition["duration"]) and re.fullmatch(r"\d+s", condition["evaluationInterval"])
        assert "Runbook: docs/runbook.md#" in policy["documentation"]["content"]
        assert "{{" not in policy["documentation"]["content"] + policy["documentation"]["subject"]
    assert set(policies) == set(alerts)
    for name, policy in policies.items():
        severity = alerts[name]["labels"]["severity"]
        assert policy["severity"] == severity.upper()
        channels = policy["notificationChannels"]
        assert channels == [f"projects/PROJECT_ID/notificationChannels/{severity.upper()}_CHANNEL_ID"], name
        query = policy["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]
        if name != "PetcutTargetDown":  # Cloud Run scales to zero: that one has its own query
            assert query == alerts[name]["expr"], name
        duration = int(policy["conditions"][0]["conditionPrometheusQueryLanguage"]["duration"][:-1])
        assert duration == _seconds(alerts[name].get("for", "0m")), name


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"].lower() for panel in board["panels"])
    for topic in ("requests per second", "latency", "errors by route and status", "model state", "warmup",
                  "queue", "shedding", "cache hit ratio", "inference time", "rss"):  # fmt: skip
        assert topic in titles, topic
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["expr"].strip() and t["refId"] for t in panel["targets"])


def test_every_metric_the_rules_and_dashboard_read_is_one_petcut_exports() -> None:
    exported = set(COLLECTED)
    for name, (kind, _, _, _) in METRICS.items():
        exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else {name}
    texts = [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    texts += [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel["targets"]]
    used = {name for text in texts for name in re.findall(r"\b(?:petcut|process)_[a-z_]+\b", text)}
    assert used and used <= exported, used - exported
