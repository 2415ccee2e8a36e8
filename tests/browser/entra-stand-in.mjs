// A stand-in for Microsoft Entra ID as an external authentication method's
// caller, on loopback: it signs the `id_token_hint` with its own RSA key,
// serves that key as its tenant's JWKS, sends the browser to the provider's
// authorization endpoint as Entra ID does (implicit flow, `response_type=
// id_token`, `response_mode=form_post`, a `claims` request for `acr` and
// `amr`), and receives the form post at its `externalauthprovider` URL,
// where it validates the returned id_token as Entra ID would: the
// provider's signature by its JWKS, iss, aud, nonce, exp and iat, the hint's
// sub/oid/tid, acr and amr.

import { createPublicKey, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto';
import { createServer } from 'node:http';

const b64url = (data) => Buffer.from(data).toString('base64url');
const json64 = (value) => b64url(JSON.stringify(value));
const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const ACR = 'possessionorinherence';
const AMR_REQUESTED = ['face', 'fido', 'fpt', 'hwk', 'iris', 'otp', 'pop', 'retina', 'sc', 'sms', 'swk', 'tel', 'vbm'];

export async function startEntra({ issuerOfProvider }) {
  const tenantId = randomUUID();
  const appId = randomUUID();
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
  let base;
  let clientId;
  const sent = new Map(); // state -> { nonce, claims of the hint }
  let lastHint;

  const signJwt = (payload) => {
    const data = `${json64({ alg: 'RS256', typ: 'JWT', kid })}.${json64(payload)}`;
    return `${data}.${b64url(sign('sha256', Buffer.from(data), privateKey))}`;
  };

  /**
   * The id_token_hint, as Entra ID makes it (issued already expired: it is
   * a hint, not a credential), or spoiled as `variant` says.
   */
  function hint(user, variant) {
    const now = Math.floor(Date.now() / 1000) - (variant === 'stale' ? 3600 : 0);
    const claims = {
      iss: variant === 'wrong-issuer' ? 'https://login.example.net/other/v2.0' : `${base}/${tenantId}/v2.0`,
      aud: appId,
      sub: `sub-${user.oid}`,
      oid: user.oid,
      tid: tenantId,
      preferred_username: user.upn,
      // Entra ID's tokens carry a unique id, so no two hints are alike.
      uti: randomUUID(),
      iat: now,
      nbf: now,
      exp: now - 1,
    };
    let token = signJwt(claims);
    if (variant === 'tampered') {
      const [header, , signature] = token.split('.');
      token = `${header}.${json64({ ...claims, oid: 'someone-else' })}.${signature}`;
    }
    return { token, claims };
  }

  async function validate(idToken, expected) {
    const [header64, payload64, signature64] = idToken.split('.');
    const header = JSON.parse(Buffer.from(header64, 'base64url'));
    const claims = JSON.parse(Buffer.from(payload64, 'base64url'));
    if (header.alg !== 'RS256') throw new Error(`alg ${header.alg}`);
    const keys = await (await fetch(`${issuerOfProvider}/jwks`)).json();
    const key = keys.keys.find((k) => k.kid === header.kid);
    if (!key) throw new Error('signed by a key the provider does not publish');
    // The reference requires each key's X.509 form.
    if (!Array.isArray(key.x5c) || !key.x5c.length) throw new Error('the key has no x5c');
    const ok = verify(
      'sha256',
      Buffer.from(`${header64}.${payload64}`),
      createPublicKey({ key, format: 'jwk' }),
      Buffer.from(signature64, 'base64url'),
    );
    if (!ok) throw new Error('signature does not verify');
    const now = Math.floor(Date.now() / 1000);
    const checks = {
      iss: claims.iss === issuerOfProvider,
      aud: claims.aud === clientId,
      nonce: claims.nonce === expected.nonce,
      sub: claims.sub === expected.hint.sub,
      oid: claims.oid === expected.hint.oid,
      tid: claims.tid === expected.hint.tid,
      acr: claims.acr === ACR,
      amr: Array.isArray(claims.amr) && claims.amr.every((m) => AMR_REQUESTED.includes(m)),
      exp: claims.exp > now && claims.exp <= now + 3600,
      iat: claims.iat <= now + 60,
    };
    const failed = Object.entries(checks).filter(([, ok]) => !ok).map(([name]) => name);
    if (failed.length) throw new Error(`id_token claims wrong: ${failed.join(', ')}`);
    return claims;
  }

  const page = (outcome, text, data = {}) => {
    const attributes = Object.entries(data)
      .map(([k, v]) => ` data-${k}="${escape(v)}"`)
      .join('');
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Entra stand-in</title></head><body><p id="result" data-outcome="${escape(outcome)}"${attributes}>${escape(text)}</p></body></html>`;
  };

  const server = createServer(async (request, response) => {
    const url = new URL(request.url, base);
    const send = (status, body, type = 'text/html; charset=utf-8') => {
      response.writeHead(status, { 'content-type': type });
      response.end(body);
    };
    if (request.method === 'GET' && url.pathname === `/${tenantId}/discovery/v2.0/keys`) {
      return send(200, JSON.stringify({ keys: [jwk] }), 'application/json');
    }
    if (request.method === 'GET' && url.pathname === '/start') {
      // What Entra ID does when the person picks the external method: a
      // form POSTed to the provider's authorization endpoint.
      const user = { oid: url.searchParams.get('oid'), upn: url.searchParams.get('upn') };
      const variant = url.searchParams.get('hint') ?? 'valid';
      const { token, claims } =
        variant === 'replay' ? lastHint : hint(user, variant);
      lastHint = { token, claims };
      const state = randomUUID();
      const nonce = variant === 'replay' ? lastHint.nonce : randomUUID();
      lastHint.nonce = nonce;
      sent.set(state, { nonce, hint: claims });
      const fields = {
        scope: 'openid',
        response_type: 'id_token',
        response_mode: 'form_post',
        client_id: clientId,
        redirect_uri: `${base}/common/federation/externalauthprovider`,
        nonce,
        state,
        login_hint: user.upn,
        id_token_hint: token,
        claims: JSON.stringify({
          id_token: {
            acr: { essential: true, values: [ACR] },
            amr: { essential: true, values: AMR_REQUESTED },
          },
        }),
        'client-request-id': randomUUID(),
      };
      const inputs = Object.entries(fields)
        .map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`)
        .join('');
      return send(
        200,
        `<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="${issuerOfProvider}/authorize">${inputs}</form></body></html>`,
      );
    }
    if (request.method === 'POST' && url.pathname === '/common/federation/externalauthprovider') {
      let body = '';
      for await (const chunk of request) body += chunk;
      const form = new URLSearchParams(body);
      const expected = sent.get(form.get('state'));
      if (!expected) return send(200, page('bad-state', 'unknown state'));
      sent.delete(form.get('state'));
      if (form.get('error')) {
        return send(200, page('error', form.get('error'), {
          description: form.get('error_description') ?? '',
          token: form.has('id_token') ? 'yes' : 'no',
        }));
      }
      try {
        const claims = await validate(form.get('id_token'), expected);
        return send(200, page('signed-in', claims.oid, { sub: claims.sub, acr: claims.acr, amr: claims.amr.join(' ') }));
      } catch (e) {
        return send(200, page('invalid-token', e.message));
      }
    }
    send(404, 'not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  return {
    tenantId,
    appId,
    url: base,
    redirectUri: () => `${base}/common/federation/externalauthprovider`,
    issuer: () => `${base}/${tenantId}/v2.0`,
    jwksUri: () => `${base}/${tenantId}/discovery/v2.0/keys`,
    setClient(id) {
      clientId = id;
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
