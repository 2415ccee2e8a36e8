"""A relying party of the OpenID provider, built on Authlib as any Python
web application would: authorization code flow with PKCE (S256), `state`
and `nonce`, optionally a pushed authorization request (RFC 9126), and the
id_token validated against the provider's JWKS (signature, iss, aud, nonce,
exp, iat, auth_time).

    rp.py --issuer URL [--listen 127.0.0.1:0]

It prints `relying party on http://…` once listening, then reads one line
of JSON from stdin: {"client_id": …, "client_secret": …} (the client is
registered for its redirect URI, `<url>/callback`, which is known only then).

Pages, each with a `#result` element whose `data-outcome` tells the test
what happened:
- /login?user=ID[&push=1][&verifier=wrong]: starts a sign-in for user ID.
- /callback: the provider's answer: `signed-in` (with `data-sub`), `error`
  (the OAuth error the provider sent, with the state checked), or
  `token-error` (the token endpoint's refusal).
- /replay: redeems the last code again: `token-error` expected.
"""

import argparse
import html
import json
import secrets
import sys
import threading
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

# Authlib's OpenID Connect claim checks (CodeIDToken) are still built on
# authlib.jose, which announces its successor (joserfc) on import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken


class RelyingParty:
    def __init__(self, issuer):
        self.issuer = issuer
        self.metadata = requests.get(
            issuer + "/.well-known/openid-configuration", timeout=10
        ).json()
        assert self.metadata["issuer"] == issuer, "discovery names another issuer"
        self.client_id = None
        self.client_secret = None
        self.redirect_uri = None
        self.pending = {}  # state -> (nonce, code_verifier)
        self.last_code = None
        self.lock = threading.Lock()

    def session(self):
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            scope="openid",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )

    def login(self, user, push, wrong_verifier):
        state = secrets.token_urlsafe(16)
        nonce = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        sent_verifier = secrets.token_urlsafe(48) if wrong_verifier else verifier
        with self.lock:
            self.pending[state] = (nonce, sent_verifier)
        if push:
            # RFC 9126: the request goes to the provider authenticated, and
            # the browser carries only its request_uri.
            answer = requests.post(
                self.metadata["pushed_authorization_request_endpoint"],
                auth=(self.client_id, self.client_secret),
                data={
                    "response_type": "code",
                    "client_id": self.client_id,
                    "redirect_uri": self.redirect_uri,
                    "scope": "openid",
                    "state": state,
                    "nonce": nonce,
                    "login_hint": user,
                    "code_challenge": create_s256_code_challenge(verifier),
                    "code_challenge_method": "S256",
                },
                timeout=10,
            )
            assert answer.status_code == 201, answer.text
            query = urllib.parse.urlencode(
                {"client_id": self.client_id, "request_uri": answer.json()["request_uri"]}
            )
            return self.metadata["authorization_endpoint"] + "?" + query
        url, _ = self.session().create_authorization_url(
            self.metadata["authorization_endpoint"],
            state=state,
            nonce=nonce,
            login_hint=user,
            code_verifier=verifier,
        )
        return url

    def callback(self, query):
        state = query.get("state")
        with self.lock:
            pending = self.pending.pop(state, None)
        if pending is None:
            return "bad-state", "the state is not one this relying party sent", {}
        if query.get("iss") != self.issuer:
            return "bad-issuer", "the response names another issuer", {}
        if "error" in query:
            return "error", query["error"], {"description": query.get("error_description", "")}
        nonce, verifier = pending
        self.last_code = query["code"]
        try:
            token = self.session().fetch_token(
                self.metadata["token_endpoint"], code=query["code"], code_verifier=verifier
            )
        except OAuthError as e:
            return "token-error", e.error, {"description": e.description or ""}
        keys = JsonWebKey.import_key_set(
            requests.get(self.metadata["jwks_uri"], timeout=10).json()
        )
        claims = jwt.decode(
            token["id_token"],
            keys,
            claims_cls=CodeIDToken,
            claims_options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
                "auth_time": {"essential": True},
            },
            claims_params={"nonce": nonce, "client_id": self.client_id},
        )
        claims.validate()
        return "signed-in", claims["sub"], {"sub": claims["sub"], "amr": " ".join(claims.get("amr", []))}

    def replay(self):
        try:
            self.session().fetch_token(
                self.metadata["token_endpoint"], code=self.last_code, code_verifier="x" * 43
            )
        except OAuthError as e:
            return "token-error", e.error, {"description": e.description or ""}
        return "signed-in", "a replayed code was accepted", {}


def page(outcome, text, data):
    attributes = "".join(
        f' data-{html.escape(k)}="{html.escape(v)}"' for k, v in data.items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Example relying party</title></head>"
        f'<body><h1>Example relying party</h1><p id="result" data-outcome="{html.escape(outcome)}"{attributes}>'
        f"{html.escape(text)}</p></body></html>"
    ).encode()


def handler_for(rp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            try:
                if url.path == "/login":
                    location = rp.login(
                        query["user"], query.get("push") == "1", query.get("verifier") == "wrong"
                    )
                    self.send_response(303)
                    self.send_header("Location", location)
                    self.end_headers()
                    return
                if url.path == "/callback":
                    body = page(*rp.callback(query))
                elif url.path == "/replay":
                    body = page(*rp.replay())
                else:
                    self.send_error(404)
                    return
            except Exception as e:  # shown to the test, which fails on it
                body = page("exception", f"{type(e).__name__}: {e}", {})
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    rp = RelyingParty(args.issuer.rstrip("/"))
    server = ThreadingHTTPServer((host, int(port)), handler_for(rp))
    url = f"http://{host}:{server.server_address[1]}"
    rp.redirect_uri = url + "/callback"
    print(f"relying party on {url}", flush=True)
    client = json.loads(sys.stdin.readline())
    rp.client_id = client["client_id"]
    rp.client_secret = client["client_secret"]
    print("relying party ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
