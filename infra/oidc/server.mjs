// A local OpenID Provider for Fittrack's SSO tests: panva/oidc-provider on 127.0.0.1.
//
//   node server.mjs [--port N] [--clients FILE] [--jwks FILE] [--options JSON]
//
// Each setting also comes from the environment (OIDC_PORT, OIDC_CLIENTS, OIDC_JWKS, OIDC_OPTIONS); --clients and
// --jwks name JSON files, the variables may hold the JSON itself. Port 0 (the default) picks a free port. Once it
// listens it prints one line of JSON, {"issuer": "http://127.0.0.1:PORT"}, on stdout.
//
// Clients are oidc-provider client metadata: client_id, client_secret, redirect_uris,
// token_endpoint_auth_method, id_token_signed_response_alg, application_type ("native" lets a loopback redirect
// URI use any port, as RFC 8252 says, which the CLI's listener needs). The JWKS holds private keys, so a test can
// sign tokens with the provider's own key. Development interactions are on: any login name and password are
// accepted, and the name becomes the subject. Test use only: nothing here is kept past the process.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    clients: { type: 'string' },
    jwks: { type: 'string' },
    options: { type: 'string' },
  },
});

// A file named on the command line, else JSON (or a file name) in the variable, else the fallback.
function setting(flag, variable, fallback) {
  if (flag !== undefined) return JSON.parse(readFileSync(flag, 'utf8'));
  const raw = process.env[variable];
  if (!raw) return fallback;
  return JSON.parse(raw.trim().startsWith('{') || raw.trim().startsWith('[') ? raw : readFileSync(raw, 'utf8'));
}

const port = Number(values.port ?? process.env.OIDC_PORT ?? 0);
const clients = setting(values.clients, 'OIDC_CLIENTS', [
  {
    client_id: 'fittrack',
    client_secret: 'fittrack-test-secret',
    redirect_uris: ['http://127.0.0.1/callback'],
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_basic',
  },
]);
const jwks = setting(values.jwks, 'OIDC_JWKS', undefined);
const options = values.options !== undefined ? JSON.parse(values.options) : setting(undefined, 'OIDC_OPTIONS', {});

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    ...(jwks ? { jwks } : {}),
    // Fixed keys: the tests' cookies only need to survive this process.
    cookies: { keys: ['fittrack-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    // RFC 9700 2.1.1: public clients must use PKCE; the confidential test client may do without.
    pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
    // Profile claims in the ID token itself: Fittrack reads no userinfo endpoint.
    conformIdTokenClaims: false,
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, name: sub, preferred_username: sub, email: `${sub}@example.test`, email_verified: true };
        },
      };
    },
    ...options,
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// Nothing to flush: the provider keeps everything in memory.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
