"""PromQL helpers for the deploy tests: the metric names an expression reads, and a parse
check through promtool (which has no standalone expression checker, so each expression
becomes a recording rule in a throwaway rule file)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan"}
)
# Grafana's variables, replaced by what they stand for at query time.
_GRAFANA = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def from_grafana(expr: str) -> str:
    for variable, value in _GRAFANA.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?[A-Za-z_]+\}?", "keel", expr)


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects: identifiers outside label matchers,
    grouping clauses and ranges that are not function calls or keywords."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group().lower() in _KEYWORDS or text[match.start() - 1 : match.start()].isdigit():
            continue  # an operator keyword, or the unit of a number like 5m
        names.add(match.group())
    return names


def label_values(expr: str, label: str) -> set[str]:
    """Values an expression matches `label` against (= and =~, alternatives split)."""
    values: set[str] = set()
    for match in re.finditer(rf'\b{label}\s*(=~|!~|=|!=)\s*"([^"]*)"', expr):
        values.update(match.group(2).split("|"))
    return values


def assert_parses(promtool: str, expressions: Iterable[str], *, directory: Path) -> None:
    rules = [
        {"record": f"check:expression_{index}", "expr": expr}
        for index, expr in enumerate(expressions)
    ]
    path = directory / "expressions.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
