// Stack Auth's own JavaScript SDK (`@stackframe/js`), unmodified, against Tessera's Stack
// surface. Run by `clients::stack_s_own_sdk_*` with one installed release of the SDK; exits
// non-zero at the first step that does not behave as the SDK's users expect.
//
// Env: SDK_DIR (a folder with node_modules/@stackframe/js), BASE (`{server}/compat/stack-auth`),
// PROJECT_ID, PUBLISHABLE_KEY, SECRET_KEY, EMAIL, PASSWORD (a user in a team TEAM_ID),
// TOTP_EMAIL and TOTP_SECRET_BASE64 (a user with TOTP on), OTHER_TEAM_ID (a team the user is
// not in), SUSPENDED_EMAIL (a suspended user), OTHER_PROJECT_ID and OTHER_PUBLISHABLE_KEY (a
// second tenant). Between the two halves it prints `expire` and waits for a line on stdin,
// while the test moves the server's clock past the access token's expiry.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

// The SDK checks the network with outside hosts after repeated failures: never from a test.
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
  if (url.hostname !== "127.0.0.1") throw new TypeError(`only loopback is reached from the test: ${url.href}`);
  return realFetch(input, init);
};

const env = (k) => process.env[k] ?? assert.fail(`${k} is not set`);
const require = createRequire(path.join(env("SDK_DIR"), "package.json"));
const { StackClientApp, StackServerApp } = await import(pathToFileURL(require.resolve("@stackframe/js")).href);
const options = { baseUrl: env("BASE"), projectId: env("PROJECT_ID"), publishableClientKey: env("PUBLISHABLE_KEY"), tokenStore: "memory" };
const [EMAIL, PASSWORD] = [env("EMAIL"), env("PASSWORD")];

let current = "start";
const step = (name) => { current = name; };
process.on("unhandledRejection", (e) => { console.error(`${current}: ${e?.stack ?? e}`); process.exit(1); });

/** The code of a Result's error or a thrown error: the SDK's KnownError carries `errorCode`. */
const code = (e) => e?.errorCode ?? `${e?.name}: ${e?.message}`;
async function throwsKnown(expected, fn) {
  try { await fn(); } catch (e) { assert.equal(code(e), expected, `${current}: ${e?.stack ?? e}`); return; }
  assert.fail(`${current}: expected ${expected}, nothing was thrown`);
}
const resultError = (r) => (assert.equal(r.status, "error", `${current}: expected an error`), code(r.error));

/** RFC 6238 with SHA-1, 30 s, 6 digits, at the real time (the server's clock is real until `expire`). */
function totp(secretBase64) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const mac = createHmac("sha1", Buffer.from(secretBase64, "base64")).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

// Every known error the surface answers must be one the SDK can rebuild from its body: its
// `KnownError.fromJson` throws when the code is unknown or `details` lacks what the class reads.
const { KnownError } = await import(pathToFileURL(require.resolve("@stackframe/stack-shared/dist/known-errors")).href);
const clientHeaders = { "x-stack-project-id": env("PROJECT_ID"), "x-stack-access-type": "client", "x-stack-publishable-client-key": env("PUBLISHABLE_KEY") };
const serverHeaders = { "x-stack-project-id": env("PROJECT_ID"), "x-stack-access-type": "server", "x-stack-secret-server-key": env("SECRET_KEY") };
async function knownError(expected, path, { method = "GET", headers = clientHeaders, json, form, raw } = {}) {
  step(`${expected} from ${method} ${path}`);
  const init = { method, headers: { ...headers } };
  if (json !== undefined) { init.body = JSON.stringify(json); init.headers["content-type"] = "application/json"; }
  if (raw !== undefined) { init.body = raw; init.headers["content-type"] = "application/json"; }
  if (form !== undefined) { init.body = new URLSearchParams(form); }
  const res = await fetch(`${env("BASE")}/api/v1${path}`, init);
  const body = await res.json();
  assert.equal(res.headers.get("x-stack-known-error"), expected, `${current}: ${JSON.stringify(body)}`);
  assert.equal(res.headers.get("x-hexclave-known-error"), expected);
  assert.equal(KnownError.fromJson(body).errorCode, expected);
}

const app = new StackClientApp(options);
const server = new StackServerApp({ ...options, secretServerKey: env("SECRET_KEY") });

step("signed out, getUser is null");
assert.equal(await app.getUser(), null);

step("a wrong password is EMAIL_PASSWORD_MISMATCH");
assert.equal(resultError(await app.signInWithCredential({ email: EMAIL, password: "not the password", noRedirect: true })), "EMAIL_PASSWORD_MISMATCH");

step("sign-up refusals");
const signUp = (email, password) => app.signUpWithCredential({ email, password, noRedirect: true, noVerificationCallback: true });
assert.equal(resultError(await signUp(EMAIL, "another fine passphrase 42")), "USER_EMAIL_ALREADY_EXISTS");
assert.equal(resultError(await signUp("short@example.com", "short")), "PASSWORD_TOO_SHORT");

step("password sign-in");
assert.equal((await app.signInWithCredential({ email: EMAIL, password: PASSWORD, noRedirect: true })).status, "ok");

step("read the user");
let user = await app.getUser({ or: "throw" });
assert.equal(user.primaryEmail, EMAIL);
assert.equal(user.hasPassword, true);
assert.equal(user.isAnonymous, false);

step("update display name and client metadata");
await user.update({ displayName: "Ada from the SDK", clientMetadata: { theme: "dark" } });
user = await app.getUser({ or: "throw" });
assert.equal(user.displayName, "Ada from the SDK");
assert.deepEqual(user.clientMetadata, { theme: "dark" });

step("a display name past its limit is SCHEMA_ERROR");
await throwsKnown("SCHEMA_ERROR", () => user.update({ displayName: "x".repeat(300) }));

step("list teams and select one");
const teams = await user.listTeams();
assert.deepEqual(teams.map((t) => t.id), [env("TEAM_ID")]);
await user.setSelectedTeam(teams[0]);
user = await app.getUser({ or: "throw" });
assert.equal(user.selectedTeam?.id, env("TEAM_ID"));

step("a team the user is not in is TEAM_MEMBERSHIP_NOT_FOUND");
await throwsKnown("TEAM_MEMBERSHIP_NOT_FOUND", () => user.update({ selectedTeamId: env("OTHER_TEAM_ID") }));

step("the access token carries what the SDK reads");
const auth = await user.getAuthJson();
assert.ok(auth.accessToken, "the SDK kept the access token");

step("TOTP sign-in: the attempt code, a wrong code, then the right one");
// In Node the SDK's public sign-in cannot hand over the attempt code (it would redirect to its
// MFA page), so it is read where the SDK reads it, from the known error.
const second = new StackClientApp(options);
let attempt;
try {
  await second._interface.signInWithCredential(env("TOTP_EMAIL"), PASSWORD, await second._getSession());
} catch (e) {
  assert.equal(code(e), "MULTI_FACTOR_AUTHENTICATION_REQUIRED");
  attempt = e.details?.attempt_code;
}
assert.ok(attempt, "an attempt code");
const wrong = totp(env("TOTP_SECRET_BASE64")) === "000000" ? "111111" : "000000";
assert.equal(resultError(await second.signInWithMfa(wrong, attempt, { noRedirect: true })), "INVALID_TOTP_CODE");
assert.equal((await second.signInWithMfa(totp(env("TOTP_SECRET_BASE64")), attempt, { noRedirect: true })).status, "ok");
assert.equal((await second.getUser({ or: "throw" })).primaryEmail, env("TOTP_EMAIL"));

await knownError("INVALID_PROJECT_FOR_ACCESS_TOKEN", "/users/me", {
  headers: { "x-stack-project-id": env("OTHER_PROJECT_ID"), "x-stack-access-type": "client",
    "x-stack-publishable-client-key": env("OTHER_PUBLISHABLE_KEY"), "x-stack-access-token": auth.accessToken },
});

// The server's clock moves past the access token's expiry: the next call refreshes.
console.log("expire");
await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));

step("refresh after expiry");
user = await app.getUser({ or: "throw" });
assert.equal(user.displayName, "Ada from the SDK");

step("sign out");
await app.signOut();
assert.equal(await app.getUser(), null);

step("server: read, list, update, delete");
const id = user.id;
let serverUser = await server.getUser(id);
assert.equal(serverUser.primaryEmail, EMAIL);
assert.equal(typeof serverUser.riskScores.signUp.bot, "number");
const listed = await server.listUsers({ limit: 10 });
assert.ok(listed.some((u) => u.id === id));
await serverUser.update({ displayName: "Set by the server", serverMetadata: { plan: "pro" } });
serverUser = await server.getUser(id);
assert.equal(serverUser.displayName, "Set by the server");
assert.deepEqual(serverUser.serverMetadata, { plan: "pro" });
await serverUser.delete();
assert.equal(await server.getUser(id), null, "USER_NOT_FOUND is null");

step("a wrong publishable key is INVALID_PUBLISHABLE_CLIENT_KEY");
const wrongKey = new StackClientApp({ ...options, publishableClientKey: "tsr_pk_wrong" });
assert.equal(resultError(await wrongKey.signInWithCredential({ email: EMAIL, password: PASSWORD, noRedirect: true }).catch((e) => ({ status: "error", error: e }))), "INVALID_PUBLISHABLE_CLIENT_KEY");

const otherUuid = "00000000-0000-4000-8000-000000000000";
await knownError("ACCESS_TYPE_REQUIRED", "/users/me", { headers: { "x-stack-project-id": env("PROJECT_ID") } });
await knownError("INVALID_ACCESS_TYPE", "/users/me", { headers: { ...clientHeaders, "x-stack-access-type": "admin" } });
await knownError("ACCESS_TYPE_WITHOUT_PROJECT_ID", "/users/me", { headers: { "x-stack-access-type": "client" } });
await knownError("PROJECT_NOT_FOUND", "/users/me", { headers: { ...clientHeaders, "x-stack-project-id": otherUuid } });
await knownError("INVALID_PUBLISHABLE_CLIENT_KEY", "/users/me", { headers: { ...clientHeaders, "x-stack-publishable-client-key": "nope" } });
await knownError("INVALID_SECRET_SERVER_KEY", "/users", { headers: { ...serverHeaders, "x-stack-secret-server-key": "nope" } });
await knownError("INSUFFICIENT_ACCESS_TYPE", "/users");
await knownError("CANNOT_GET_OWN_USER_WITHOUT_USER", "/users/me");
await knownError("UNPARSABLE_ACCESS_TOKEN", "/users/me", { headers: { ...clientHeaders, "x-stack-access-token": "nope" } });
await knownError("ACCESS_TOKEN_EXPIRED", "/users/me", { headers: { ...clientHeaders, "x-stack-access-token": auth.accessToken } });
await knownError("USER_NOT_FOUND", `/users/${otherUuid}`, { headers: serverHeaders });
await knownError("BODY_PARSING_ERROR", `/users/${otherUuid}`, { method: "PATCH", headers: serverHeaders, raw: "{not json" });
await knownError("REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED", "/auth/oauth/token", { method: "POST", headers: {},
  form: { grant_type: "refresh_token", refresh_token: "nope", client_id: env("PROJECT_ID"), client_secret: env("PUBLISHABLE_KEY") } });
await knownError("INVALID_OAUTH_CLIENT_ID_OR_SECRET", "/auth/oauth/token", { method: "POST", headers: {},
  form: { grant_type: "refresh_token", refresh_token: "nope", client_id: env("PROJECT_ID"), client_secret: "nope" } });
await knownError("VERIFICATION_CODE_NOT_FOUND", "/auth/mfa/sign-in", { method: "POST", json: { type: "totp", totp: "123456", code: "nope" } });
await knownError("RESTRICTED_USER_NOT_ALLOWED", "/auth/password/sign-in", { method: "POST", json: { email: env("SUSPENDED_EMAIL"), password: PASSWORD } });

console.log("ok");
process.exit(0);
