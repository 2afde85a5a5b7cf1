"""deploy/prometheus/alerts.yml: valid rules, promtool unit tests that show each burn-rate
alert firing under its burn and silent at a healthy rate, and only series Keel exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.conftest import DEPLOY, Exported, load_yaml, require_tool
from tests.deploy.promql import label_values, metric_names

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, check=False, timeout=300
    )


def test_rules_file_is_valid() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_under_a_burn_and_stay_silent_when_healthy() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_exercised_both_ways() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert len(alerts) == 6
    fired: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    assert fired == alerts
    assert silent == alerts


def test_a_weakened_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    # The tests must notice when a page no longer fires: raise the 14.4x threshold tenfold.
    weakened = RULES.read_text().replace("(14.4 * ", "(144 * ")
    assert weakened != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(weakened)
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yml")
    result = _promtool("test", "rules", tmp_path / "alerts.test.yml")
    assert result.returncode != 0
    assert "KeelAvailabilityBurnRate1h" in result.stdout + result.stderr


def test_page_and_ticket_windows_follow_the_sre_workbook() -> None:
    windows = {}
    for rule in _rules():
        if "alert" in rule:
            factors = re.findall(r"ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rule["expr"])
            assert len(factors) == 2, rule["expr"]
            (long, factor, budget), (short, factor_again, budget_again) = factors
            assert (factor, budget) == (factor_again, budget_again)
            windows[rule["alert"]] = (long, short, float(factor), rule["labels"]["severity"])
            slo_budget = {"availability": 0.001, "list-latency": 0.01}[rule["labels"]["slo"]]
            assert float(budget) == slo_budget
    expected = {("1h", "5m", 14.4, "page"), ("6h", "30m", 6.0, "page"), ("3d", "6h", 1.0, "ticket")}
    assert {value for name, value in windows.items() if "Availability" in name} == expected
    assert {value for name, value in windows.items() if "ListLatency" in name} == expected


def test_rules_read_only_series_keel_exports(exported_metrics: Exported) -> None:
    rules = _rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    for rule in rules:
        unknown = metric_names(rule["expr"]) - exported_metrics.names - recorded
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {unknown}"
        assert label_values(rule["expr"], "route") <= exported_metrics.routes
    # The latency SLI needs 0.2 s to be a bucket boundary, or the ratio would be empty.
    boundaries = {
        sample.labels["le"]
        for sample in exported_metrics.samples
        if sample.name == "http_request_duration_seconds_bucket"
    }
    assert "0.2" in boundaries
    assert all(
        'le="0.2"' in rule["expr"] for rule in rules if "list_slow" in rule.get("record", "")
    )
