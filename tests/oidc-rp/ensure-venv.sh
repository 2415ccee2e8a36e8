#!/usr/bin/env bash
# Installs the relying party's Python packages (tests/oidc-rp/requirements.txt)
# into a virtual environment under target/, once per change of the pins.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${OIDC_RP_VENV:-target/oidc-rp-venv}
REQUIREMENTS=tests/oidc-rp/requirements.txt
if [ -x "$VENV/bin/python" ] && cmp -s "$REQUIREMENTS" "$VENV/requirements.installed"; then
  exit 0
fi
echo "tests/oidc-rp: installing Authlib and requests into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV" || {
  echo "tests/oidc-rp: python3 -m venv failed; install python3-venv" >&2
  exit 1
}
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
cp "$REQUIREMENTS" "$VENV/requirements.installed"
