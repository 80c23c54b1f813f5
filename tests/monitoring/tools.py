"""Paths of the monitoring outputs, the generator loaded from deploy/monitoring, the real tools."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"
ALERTMANAGER = MONITORING / "alertmanager.yaml"
DASHBOARD = MONITORING / "grafana" / "petcut.json"
CLOUD_MONITORING = MONITORING / "cloud-monitoring"
RULES_TEST = Path(__file__).resolve().parent / "rules_test.yaml"
#: what a Grafana variable stands for when a dashboard query is sent to Prometheus as is
GRAFANA_VARIABLES = {"$job": "petcut", "$instance": ".*", "$__rate_interval": "5m"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("petcut_monitoring_generate", MONITORING / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tool(name: str, package: str) -> str:
    """The binary's path, or skip saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package}; .ci/run installs it)")
    return path


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL with the Grafana variables replaced) for every target of every panel."""
    queries = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a Grafana variable the tests do not know: {expr}"
            queries.append((panel["title"], expr))
    return queries


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a page's headings (lower case, punctuation dropped, spaces to -)."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors
