// A consumer of the packed @baton-dev/sdk, run by scripts/sdk-ts-package.sh:
// compiled in a temporary project with a strict tsconfig and run with plain
// node. Against the live broker in BATON_ADDR it issues a key-bound token,
// validates it online, verifies it offline (keys from the broker's GetKeySet
// and, when BATON_JWKS_URL is set, from its JWKS endpoint, revocations from
// the stream), releases it and sees the verifier refuse it. With the
// operator token (BATON_OPERATOR_TOKEN) and the resource server's credentials
// (BATON_RS_ID/SECRET) it also drives the admin service, validates as the
// resource server and revokes in bulk. Any failure exits non-zero. It never prints the token or the secret.

import { AdminClient, AgentKey, BatonError, BrokerClient, RevocationSubscriber, TokenStatus, TokenVerifier, type TokenVerifierOptions, type VerifyResult } from "@baton-dev/sdk";

type KeySet = Awaited<ReturnType<BrokerClient["getKeySet"]>>;

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok - ${what}`);
}

function verdict(r: VerifyResult): string {
  return r.ok ? "ok" : r.reason;
}

// Whatever hangs (a stream that never becomes ready, say) fails the run.
setTimeout(() => {
  console.error("smoke test timed out");
  process.exit(1);
}, 30_000).unref();

const addr = env("BATON_ADDR");
const app = { clientId: env("BATON_CLIENT_ID"), clientSecret: env("BATON_CLIENT_SECRET") };
const audience = env("BATON_AUDIENCE");
const scope = env("BATON_SCOPE");
const jwksUrl = process.env["BATON_JWKS_URL"];
const operator = { operatorToken: env("BATON_OPERATOR_TOKEN") };
const rs = { clientId: env("BATON_RS_ID"), clientSecret: env("BATON_RS_SECRET") };

const broker = new BrokerClient(addr);
const admin = new AdminClient(addr);
const subscriber = new RevocationSubscriber({ target: addr, caller: app });
// The resource server streams with its own credentials, written as an app's.
const rsSubscriber = new RevocationSubscriber({ target: addr, caller: rs });
const verifiers: TokenVerifier[] = [];
try {
  const key = await AgentKey.generate();
  const issued = await broker.issue(app, { taskId: `smoke-${process.pid}`, scopes: [scope], audiences: [audience], agentKey: key });
  check(issued.claims.scopes.join(" ") === scope && issued.claims.audiences.includes(audience), "issue: a token for the scope and audience asked for");
  check(issued.claims.keyThumbprint === key.thumbprint, "issue: the token is bound to the agent key");

  const online = await broker.validate(app, { token: issued.accessToken, audience, requiredScopes: [scope] });
  check(online.valid && online.status === TokenStatus.TOKEN_STATUS_VALID, "validate: the broker says valid");

  subscriber.start();
  await subscriber.ready();
  const keySources: [string, TokenVerifierOptions["keys"]][] = [["GetKeySet", broker]];
  if (jwksUrl) {
    keySources.push([
      "JWKS endpoint",
      async () => {
        const res = await fetch(jwksUrl);
        if (!res.ok) throw new Error(`JWKS endpoint answered ${res.status}`);
        return (await res.json()) as KeySet;
      },
    ]);
  }
  const htm = "GET /smoke";
  for (const [source, keys] of keySources) {
    const verifier = new TokenVerifier({ audience, issuer: issued.claims.issuer, keys, revocations: subscriber });
    verifiers.push(verifier);
    await verifier.loadKeys();
    const proof = await key.createProof(htm, issued.accessToken);
    const r = await verifier.verify(issued.accessToken, { requiredScopes: [scope], proof, htm });
    check(r.ok && r.claims.tokenId === issued.claims.tokenId, `verify offline, keys from ${source}: ${verdict(r)}`);
    const tampered = `${issued.accessToken.slice(0, -2)}${issued.accessToken.endsWith("AA") ? "BA" : "AA"}`;
    const bad = await verifier.verify(tampered, { requiredScopes: [scope], proof, htm });
    check(!bad.ok && bad.reason === "BAD_SIGNATURE", `verify offline, keys from ${source}: a tampered token is refused: ${verdict(bad)}`);
  }

  let mistyped = "";
  try {
    await broker.issue(app, { taskId: "smoke-mistyped", scopes: scope as unknown as string[], audiences: [audience] });
  } catch (err) {
    mistyped = err instanceof TypeError ? err.message : `not a TypeError: ${String(err)}`;
  }
  check(mistyped.includes("scopes"), `issue: a string for scopes is a TypeError (${mistyped})`);

  const apps: string[] = [];
  for await (const a of admin.allApps(operator, { pageSize: 1 })) apps.push(a.appId);
  check(apps.includes(app.clientId), "admin: allApps lists the app");
  check((await admin.getApp(operator, app.clientId)).audiences.includes(audience), "admin: getApp");
  const servers = await admin.listResourceServers(operator);
  check(servers.resourceServers.some((r) => r.resourceServerId === rs.clientId), "admin: listResourceServers lists the resource server");
  check((await admin.listSigningKeys(operator)).length > 0, "admin: listSigningKeys");
  check((await admin.verifyAuditLog(operator)).intact, "admin: verifyAuditLog says intact");
  const asRs = await broker.validate(rs, { token: issued.accessToken, audience });
  check(asRs.valid, "validate with the resource server's credentials");
  let notServed = "";
  try {
    await broker.validate(rs, { token: issued.accessToken, audience: `${audience}-other` });
  } catch (err) {
    notServed = err instanceof BatonError ? err.reason : String(err);
  }
  check(notServed === "AUDIENCE_NOT_SERVED", `validate as the resource server for another audience: ${notServed}`);
  rsSubscriber.start();
  await rsSubscriber.ready();
  const bulk = await broker.issue(app, { taskId: `smoke-bulk-${process.pid}`, scopes: [scope], audiences: [audience] });
  const seen = new Promise<string>((resolve) => rsSubscriber.onRevocation((r) => resolve(r.id)));
  const many = await broker.revokeMany(operator, [{ target: "token", id: bulk.claims.tokenId, reason: "smoke" }]);
  check(many.length === 1 && many[0]!.id === bulk.claims.tokenId, "revokeMany with the operator credential");
  check((await broker.validate(app, { token: bulk.accessToken, audience })).status === TokenStatus.TOKEN_STATUS_REVOKED, "validate after revokeMany: revoked");
  check((await seen) === bulk.claims.tokenId, "the resource server's subscriber receives the revocation");

  const revocation = await broker.release(issued.credential);
  check(revocation.id === issued.claims.tokenId, "release: the broker revoked the token");
  const after = await broker.validate(app, { token: issued.accessToken, audience });
  check(after.status === TokenStatus.TOKEN_STATUS_REVOKED, "validate after release: revoked");

  // The revocation reaches the subscriber through the stream, within seconds.
  const verifier = verifiers[0]!;
  let last: VerifyResult | undefined;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    last = await verifier.verify(issued.accessToken, { proof: await key.createProof(htm, issued.accessToken), htm });
    if (!last.ok && last.reason === "REVOKED") break;
  }
  check(last !== undefined && !last.ok && last.reason === "REVOKED", `verify offline after release: ${last ? verdict(last) : "never checked"}`);
} finally {
  for (const v of verifiers) v.close();
  subscriber.close();
  rsSubscriber.close();
  broker.close();
  admin.close();
}
console.log("smoke test passed");
