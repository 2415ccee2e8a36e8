#!/usr/bin/env bash
# Checks the deployment recipes in deploy/ with the tools made for each:
#   1. deploy/Dockerfile: hadolint (every rule, down to style);
#   2. deploy/kubernetes/*.yaml: kubernetes-validate, strict (no unknown
#      field), against the schemas of Kubernetes 1.27 (the first with gRPC
#      probes) and 1.37;
#   3. deploy/compose.yaml: the Compose Specification's JSON schema
#      (check-jsonschema's copy);
#   4. the Prometheus configurations of the Compose and systemd recipes:
#      promtool check config (with the alert rules they load);
#   5. deploy/systemd/mfa-server@.service: systemd-analyze verify (any
#      complaint fails, though verify itself only fails on some) and
#      systemd-analyze security --offline, whose exposure must stay low;
#   6. docs/openapi.json, the HTTP/JSON API's document: openapi-spec-validator
#      (OpenAPI 3.1; the Rust tests check that the file is current);
#   7. deploy/check_recipes.py: the recipes against each other (ports,
#      labels, selectors, the HAProxy and Prometheus addresses, security
#      settings) and every MFA_* variable each one sets against the server
#      itself (`mfa-server config show` must read each as configuration).
# The image's behaviour is tested by tests/tests/image_like.rs.
#
# Run by `make deploy-check` after deploy/check.sh (which provides promtool).
# The Python tools are installed, at the versions in
# deploy/check-requirements.txt, into a virtual environment under target/.
# systemd-analyze comes from Debian's systemd package, installed if missing
# where apt-get can (nothing is started); where it cannot, that check says
# SKIPPED, except under CI=true, where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
TOOLS=target/deploy-tools
REQUIREMENTS=deploy/check-requirements.txt
# The oldest Kubernetes the manifests are for (gRPC probes are GA from 1.27)
# and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS=(1.27.0 1.37.0)
# systemd-analyze security's exposure, shown from 0.0 (locked down) to 10.0
# and compared with --threshold in tenths (20: 2.0); the unit scores 1.2.
SYSTEMD_EXPOSURE_THRESHOLD=20

ensure_tools() {
  # The requirements file's content is the stamp: a changed pin reinstalls.
  if [ -x "$TOOLS/bin/python" ] && cmp -s "$REQUIREMENTS" "$TOOLS/requirements.installed"; then
    return
  fi
  echo "deploy/check-recipes.sh: installing hadolint, kubernetes-validate, check-jsonschema and openapi-spec-validator into $TOOLS"
  rm -rf "$TOOLS"
  if ! python3 -m venv "$TOOLS" 2>/dev/null; then
    # Debian's python3 keeps venv (with pip) in a package of its own.
    rm -rf "$TOOLS"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } || true
    fi
    python3 -m venv "$TOOLS" || {
      echo "deploy/check-recipes.sh: python3 -m venv failed; install python3-venv" >&2
      exit 1
    }
  fi
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$TOOLS/requirements.installed"
}

# Debian's systemd package, for systemd-analyze, without starting anything.
ensure_systemd_analyze() {
  command -v systemd-analyze >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  echo "deploy/check-recipes.sh: installing systemd-analyze (Debian package 'systemd'; nothing is started)"
  local policy=/usr/sbin/policy-rc.d added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  local install=(apt-get install -y -qq --no-install-recommends systemd)
  if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; } || true
  fi
  if [ -n "$added_policy" ]; then rm -f "$policy"; fi
  command -v systemd-analyze >/dev/null 2>&1
}

ensure_tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Dockerfile: $("$TOOLS/bin/hadolint" --version)"
"$TOOLS/bin/hadolint" --failure-threshold style deploy/Dockerfile

manifests=(deploy/kubernetes/*.yaml)
for version in "${KUBERNETES_VERSIONS[@]}"; do
  echo "== Kubernetes manifests: kubernetes-validate --strict, Kubernetes $version"
  "$TOOLS/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
done
echo "${#manifests[@]} manifests valid"

echo "== compose.yaml: the Compose Specification's schema"
"$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

echo "== Prometheus configurations"
promtool check config deploy/prometheus/prometheus.yml deploy/prometheus/prometheus-host.yml

UNIT=mfa-server@.service
if ensure_systemd_analyze; then
  echo "== systemd unit: $(systemd-analyze --version | head -n 1)"
  # A root of its own, with the system's units (verify loads the targets the
  # unit names) and a stand-in where the unit expects the binary: verify
  # checks that ExecStart= names an executable.
  root="$work/systemd-root"
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  printf '#!/bin/sh\n' >"$root/usr/local/bin/mfa-server"
  chmod 755 "$root/usr/local/bin/mfa-server"
  cp "deploy/systemd/$UNIT" "$root/etc/systemd/system/"
  for instance in 1 2; do
    # verify exits 0 after an unknown or unparsable setting, which it
    # ignores: any word from it is a failure here.
    if ! systemd-analyze verify --root="$root" "mfa-server@$instance.service" >"$work/verify" 2>&1 \
        || [ -s "$work/verify" ]; then
      sed "s|$root||g" "$work/verify" >&2
      echo "deploy/systemd/$UNIT: systemd-analyze verify complained (instance $instance)" >&2
      exit 1
    fi
  done
  echo "systemd-analyze verify: no complaint"
  if ! systemd-analyze security --offline=yes --root="$root" \
      --threshold="$SYSTEMD_EXPOSURE_THRESHOLD" mfa-server@1.service >"$work/security" 2>&1; then
    cat "$work/security" >&2
    echo "deploy/systemd/$UNIT: exposure above $((SYSTEMD_EXPOSURE_THRESHOLD / 10)).$((SYSTEMD_EXPOSURE_THRESHOLD % 10))" >&2
    exit 1
  fi
  grep 'Overall exposure level' "$work/security"
elif [ "${CI:-}" = true ]; then
  echo "FAILED: systemd-analyze is missing and could not be installed (Debian package 'systemd'); CI=true requires the unit's check" >&2
  exit 1
else
  echo "SKIPPED the systemd unit's check: systemd-analyze is missing (apt-get install systemd)"
fi

echo "== docs/openapi.json: openapi-spec-validator"
"$TOOLS/bin/openapi-spec-validator" docs/openapi.json

echo "== recipes against each other and against mfa-server's configuration"
"$CARGO" build --quiet -p mfa-server
"$TOOLS/bin/python" deploy/check_recipes.py target/debug/mfa-server

echo "check-recipes: OK"
