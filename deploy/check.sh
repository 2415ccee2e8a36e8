#!/usr/bin/env bash
# Checks the operators' files in deploy/ with Prometheus's own tools:
#   1. the alert rules: `promtool check rules` and their unit tests
#      (`promtool test rules`);
#   2. every PromQL expression of the Grafana dashboard, written into a
#      temporary rules file as recording rules and checked by the same parser;
#   3. the dashboard's JSON shape (the fields Grafana needs to import it), and
#      that every mfa_ metric named in it or in the rules is one the server
#      describes (server/src/telemetry/metrics.rs), so a typo or a renamed
#      metric does not become a silently empty panel or an alert that never fires.
# Run by `make deploy-check` (and so by `make test` and CI). Installs promtool
# from Debian's `prometheus` package when it is missing, without starting it.
set -euo pipefail
cd "$(dirname "$0")/.."

ALERTS=deploy/prometheus/mfa-alerts.yml
ALERT_TESTS=deploy/prometheus/mfa-alerts.test.yml
DASHBOARD=deploy/grafana/mfa-dashboard.json
# Where the server describes the metrics it exports.
METRICS_SOURCE=server/src/telemetry/metrics.rs

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deploy/check.sh: promtool is missing; install Debian's 'prometheus' package" \
      "(apt-get install --no-install-recommends prometheus) or put promtool on PATH" >&2
    exit 1
  fi
  echo "deploy/check.sh: installing promtool (Debian package 'prometheus'; the service is not started)"
  # invoke-rc.d and deb-systemd-invoke ask policy-rc.d whether a package may
  # start its service; 101 means no. Machines built from container images
  # usually have one already; otherwise add ours for the install only.
  local policy=/usr/sbin/policy-rc.d added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  local install=(apt-get install -y -qq --no-install-recommends prometheus) installed=1
  # Missing or stale package lists fail the install: refresh them, try again.
  if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1; then
    echo "deploy/check.sh: refreshing the package lists (apt-get update)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; } || installed=
  fi
  if [ -n "$installed" ] && [ -d /run/systemd/system ]; then
    # Where systemd runs, do not leave a Prometheus server starting at boot.
    systemctl disable --quiet prometheus 2>/dev/null || true
  fi
  if [ -n "$added_policy" ]; then rm -f "$policy"; fi
  if [ -z "$installed" ] || ! command -v promtool >/dev/null 2>&1; then
    echo "deploy/check.sh: could not install promtool" >&2
    exit 1
  fi
}

ensure_promtool
promtool --version 2>&1 | head -n 1

echo "== alert rules: $ALERTS"
promtool check rules "$ALERTS"

echo "== alert rule unit tests: $ALERT_TESTS"
promtool test rules "$ALERT_TESTS"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== dashboard: $DASHBOARD"
python3 - "$DASHBOARD" "$ALERTS" "$METRICS_SOURCE" "$work/dashboard-rules.yml" <<'PY'
import json
import re
import sys

dashboard_path, alerts_path, metrics_source, rules_path = sys.argv[1:5]

# Every metric the server exports, read from its `describe_*!` calls, and the
# series Prometheus makes of each histogram.
with open(metrics_source, encoding="utf-8") as f:
    described = re.findall(r'describe_(counter|gauge|histogram)!\(\s*"([a-z0-9_]+)"', f.read())
if not described:
    print(f"{metrics_source}: found no describe_counter!/gauge!/histogram! calls", file=sys.stderr)
    sys.exit(1)
KNOWN = set()
for kind, name in described:
    KNOWN |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}

# Grafana's variables, replaced by values that keep each expression valid
# PromQL wherever Grafana allows them: in a range ([$__rate_interval]) or in a
# label matcher's regex (tenant=~"$tenant").
BUILTIN = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

errors = []


def fail(message, source=dashboard_path):
    errors.append(f"{source}: {message}")


try:
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)
except (OSError, ValueError) as e:
    print(f"{dashboard_path}: not valid JSON: {e}", file=sys.stderr)
    sys.exit(1)

if not isinstance(dashboard, dict):
    print(f"{dashboard_path}: the top level must be an object", file=sys.stderr)
    sys.exit(1)
for field, kind in (("title", str), ("uid", str), ("panels", list), ("schemaVersion", int)):
    if not isinstance(dashboard.get(field), kind) or dashboard.get(field) in ("", []):
        fail(f"top-level {field!r} is missing or not a non-empty {kind.__name__}")
if dashboard.get("schemaVersion") != 39:
    fail(f"schemaVersion is {dashboard.get('schemaVersion')!r}, expected 39")
uid = dashboard.get("uid", "")
if isinstance(uid, str) and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
    fail(f"uid {uid!r}: Grafana takes at most 40 letters, digits, '-' or '_'")

variables = {}
for v in dashboard.get("templating", {}).get("list", []):
    variables[v.get("name")] = v
if variables.get("datasource", {}).get("type") != "datasource" or \
        variables.get("datasource", {}).get("query") != "prometheus":
    fail("templating needs a 'datasource' variable of type datasource, query prometheus")
tenant = variables.get("tenant", {})
tenant_query = tenant.get("query")
if isinstance(tenant_query, dict):
    tenant_query = tenant_query.get("query")
if tenant.get("type") != "query" or \
        tenant_query != "label_values(mfa_challenges_created_total, tenant)":
    fail("templating needs a 'tenant' query variable: label_values(mfa_challenges_created_total, tenant)")


def substitute(expr, where):
    def value(match):
        name = match.group(1) or match.group(2)
        if name in BUILTIN:
            return BUILTIN[name]
        if name in variables and variables[name].get("type") == "query":
            return ".*"
        fail(f"{where}: unknown variable ${name}")
        return match.group(0)
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def panels_of(panels):
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from panels_of(panel.get("panels", []))


exprs = []  # (where, expression with variables substituted)
ids = set()
for panel in panels_of(dashboard.get("panels", [])):
    where = f"panel {panel.get('id')!r} ({panel.get('title', 'untitled')!r})"
    for field in ("id", "type", "gridPos"):
        if field not in panel:
            fail(f"{where}: missing {field!r}")
    if panel.get("id") in ids:
        fail(f"{where}: duplicate id")
    ids.add(panel.get("id"))
    grid = panel.get("gridPos", {})
    if "gridPos" not in panel:
        pass
    elif not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
        fail(f"{where}: gridPos needs integer x, y, w and h")
    elif grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > 24:
        fail(f"{where}: gridPos {grid} does not fit Grafana's 24 columns")
    if panel.get("type") == "row":
        continue  # rows group panels and query nothing
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        fail(f"{where}: missing 'targets'")
        continue
    datasource = panel.get("datasource", {})
    if datasource.get("uid") != "${datasource}":
        fail(f"{where}: datasource must be ${{datasource}}, got {datasource!r}")
    refs = set()
    for target in targets:
        ref = target.get("refId")
        if not ref or ref in refs:
            fail(f"{where}: targets need distinct refIds")
        refs.add(ref)
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            fail(f"{where} target {ref}: missing expr")
            continue
        exprs.append((f"{where} target {ref}", substitute(expr, where)))

for annotation in dashboard.get("annotations", {}).get("list", []):
    if annotation.get("expr"):
        where = f"annotation {annotation.get('name')!r}"
        exprs.append((where, substitute(annotation["expr"], where)))

# Metric names, in the dashboard (queries and variables) and in the alert rules.
with open(alerts_path, encoding="utf-8") as f:
    alerts_text = f.read()
for source, text in ((dashboard_path, json.dumps(dashboard)), (alerts_path, alerts_text)):
    for name in sorted(set(re.findall(r"\bmfa_[a-z0-9_]*", text))):
        if name not in KNOWN:
            fail(f"{name} is not a metric mfa-server exports ({metrics_source})", source)

if errors:
    for error in errors:
        print(error, file=sys.stderr)
    sys.exit(1)

# One group per expression, named after its panel, so promtool's error names
# the panel. JSON is YAML, so the file needs no YAML library.
groups = [
    {"name": where, "rules": [{"record": f"dashboard:expr_{i}", "expr": expr}]}
    for i, (where, expr) in enumerate(exprs)
]
with open(rules_path, "w", encoding="utf-8") as f:
    json.dump({"groups": groups}, f, indent=2)
print(f"{len(ids)} panels, {len(exprs)} PromQL expressions")
PY

echo "== dashboard expressions (as recording rules)"
promtool check rules "$work/dashboard-rules.yml"

echo "deploy-check: OK"
