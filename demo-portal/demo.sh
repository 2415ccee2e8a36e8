#!/usr/bin/env bash
# `make demo`: starts mfa-server and the demo portal on loopback, then says
# what to open and what to run. Each run starts afresh: target/demo (the
# server's data and the stand-in phone's accounts) is cleared and a new dev
# tenant made. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
demo="$target/demo"
rm -rf "$demo"
mkdir -p "$demo/phone"

# The server prints the dev tenant's portal key, then its address.
exec {server_out}< <(
  MFA_DATA_DIR="$demo/server" MFA_LISTEN=127.0.0.1:0 MFA_METRICS_LISTEN=127.0.0.1:0 \
    exec "$target/debug/mfa-server" serve --dev 2>"$demo/server.log"
)
server_pid=$!
trap 'kill "$server_pid" ${portal_pid:+"$portal_pid"} 2>/dev/null || true' EXIT
portal_key="" address=""
while read -r line <&"$server_out"; do
  case "$line" in
    *"portal key:"*) portal_key="${line##* }" ;;
    *"listening on "*) address="${line#*listening on }"; address="${address%% *}"; break ;;
  esac
done
if [ -z "$portal_key" ] || [ -z "$address" ]; then
  echo "mfa-server did not start; see $demo/server.log" >&2
  exit 1
fi

exec {portal_out}< <(
  MFA_URL="http://$address" MFA_PORTAL_KEY="$portal_key" \
    exec "$target/debug/demo-portal" --listen "${DEMO_LISTEN:-127.0.0.1:8080}" 2>&1
)
portal_pid=$!
read -r line <&"$portal_out" || true
case "$line" in
  "demo portal on "*) url="${line#demo portal on }" ;;
  *) echo "demo-portal did not start: $line" >&2; exit 1 ;;
esac

phone="$target/debug/mfa-authenticator --home $demo/phone"
cat <<TEXT

The demo is running (mfa-server on $address, log in $demo/server.log).

1. Open $url and sign in as hanako@example.jp with the password "demo"
   (Japanese or English follows your browser's language).
2. The portal shows a QR code, with the code and server URL beneath it. In
   another terminal, add the account to the stand-in phone app and type
   the number the portal then shows:

     $phone enroll

   (press Enter at the link prompt, then type the code and the server URL)
3. Accept the terms of use: you are signed in. Sign out and sign in again:
   the portal shows a number. Let the "phone" wait for requests:

     $phone watch

   and type the number (or d to deny, f for "this wasn't me").

Ctrl-C stops the demo.
TEXT

# Keep the portal's output flowing to this terminal until Ctrl-C.
cat <&"$portal_out" || true
