"""The outputs checked by the real tools: promtool (check and unit-test the rules, parse every query) and
amtool (the Alertmanager config, and where each alert is routed). Skipped when the tools are absent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.tools import (
    ALERTMANAGER,
    CLOUD_MONITORING,
    DASHBOARD,
    PROMETHEUS_RULE,
    RULES,
    RULES_TEST,
    alert_rules,
    dashboard_queries,
    tool,
)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def check_rules(promtool: str, path: Path) -> str:
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def as_records(tmp_path: Path, queries: list[tuple[str, str]]) -> Path:
    """A rules file holding each query as a recording rule, so promtool parses it."""
    rules = [{"record": f"check:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    return path


def test_promtool_checks_the_rules_file() -> None:
    promtool = tool("promtool", "prometheus")
    out = check_rules(promtool, RULES)
    records = sum(1 for group in yaml.safe_load(RULES.read_text())["groups"] for _ in group["rules"])
    assert f"SUCCESS: {records} rules found" in out


def test_promtool_checks_the_prometheus_rule_groups(tmp_path: Path) -> None:
    promtool = tool("promtool", "prometheus")
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    path = tmp_path / "prometheusrule-groups.yaml"
    path.write_text(yaml.safe_dump(spec))
    check_rules(promtool, path)


def test_promtool_unit_tests_every_alert(tmp_path: Path) -> None:
    """rules_test.yaml on the shipped rules (annotations left out: promtool compares them verbatim, and
    test_outputs.py checks them); every alert is named in an alert_rule_test with an expected alert."""
    promtool = tool("promtool", "prometheus")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yaml")
    result = run(promtool, "test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired: dict[str, set[str]] = {}
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            if expected:
                fired.setdefault(check["alertname"], set()).update(a["exp_labels"]["severity"] for a in expected)
            else:
                silent.add(check["alertname"])
    severities = {rule["alert"]: {rule["labels"]["severity"]} for rule in alert_rules()}
    assert fired == severities  # each alert fires in a test, with its severity
    assert silent == set(severities)  # and each is checked not to fire on some series


def test_unit_tests_fail_when_a_206_would_page(tmp_path: Path) -> None:
    """The unit tests can fail: with the partial-warmup alert made critical, promtool reports it."""
    promtool = tool("promtool", "prometheus")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
            if rule.get("alert") == "PetcutWarmupPartial":
                rule["labels"]["severity"] = "critical"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yaml")
    result = run(promtool, "test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "PetcutWarmupPartial" in result.stdout + result.stderr


def test_cloud_monitoring_queries_are_promql(tmp_path: Path) -> None:
    promtool = tool("promtool", "prometheus")
    queries: list[tuple[str, str]] = []
    for path in sorted(CLOUD_MONITORING.glob("*.yaml")):
        policy: dict[str, Any] = yaml.safe_load(path.read_text())
        queries.append((path.name, policy["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]))
    assert queries
    check_rules(promtool, as_records(tmp_path, queries))


def test_dashboard_queries_are_promql(tmp_path: Path) -> None:
    promtool = tool("promtool", "prometheus")
    check_rules(promtool, as_records(tmp_path, dashboard_queries(json.loads(DASHBOARD.read_text()))))


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    result = run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_critical_pages_and_warning_opens_a_ticket(rule: dict[str, Any]) -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    labels = [f"{k}={v}" for k, v in {**rule["labels"], "alertname": rule["alert"], "job": "petcut"}.items()]
    result = run(amtool, "config", "routes", "test", "--config.file", str(ALERTMANAGER), *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {"critical": "page", "warning": "ticket"}[rule["labels"]["severity"]]
    assert result.stdout.split() == [expected], result.stdout
