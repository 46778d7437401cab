/*
 * OPC UA security against the twin's real server: an unknown server certificate is refused (it lands in rejected/,
 * the error says which `glassd pki trust` to run) and accepted only after `glassd pki trust`; a wrong password is a
 * clear error and is never logged; anonymous refused where the server wants a user; SignAndEncrypt with the three
 * policies, Sign, and an X.509 user certificate.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runPkiCommand } from "../src/cli/pki.js";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import {
  listCerts,
  OpcuaSource,
  type OpcuaSourceOptions,
  openPki,
  pkiPaths,
  thumbprintOf,
} from "../src/ingest/opcua/index.js";
import { toDer } from "../src/ingest/opcua/pki.js";
import {
  APP_URI,
  PlantServer,
  passwordFile,
  removeTempDirs,
  tempDir,
  trustedPki,
  USERS,
  waitUntil,
} from "./fixtures/opcua-plant.js";

const ps = new PlantServer({ anonymous: "off" });
const sources: OpcuaSource[] = [];
let pki = "";
let userCert = "";
let userKey = "";

function source(over: Partial<OpcuaSourceOptions>): OpcuaSource {
  const s = new OpcuaSource({
    endpoint: ps.endpoint,
    pkiDir: pki,
    applicationUri: APP_URI,
    tags: DEFAULT_TAGS,
    retry: { initialDelayMs: 100, maxDelayMs: 400 },
    identity: { type: "username", username: USERS.viewer.name, passwordFile: passwordFile(USERS.viewer.password) },
    ...over,
  });
  s.attach(async () => {});
  sources.push(s);
  return s;
}

function capture(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: "trace" }, { write: (s: string) => void lines.push(s) }), lines };
}

test.before(async () => {
  // An X.509 user certificate whose CN is a plant user, trusted in the server's user PKI before it starts.
  const dir = tempDir("glassd-opcua-user-");
  const cm = new OPCUACertificateManager({ rootFolder: dir, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  userCert = join(dir, "own", "certs", "user.pem");
  await cm.createSelfSignedCertificate({
    applicationUri: "urn:glassd-test:user",
    subject: `/CN=${USERS.operator.name}/O=glassd-test`,
    dns: ["localhost"],
    startDate: new Date(Date.now() - 3600_000),
    validity: 30,
    outputFile: userCert,
  });
  userKey = join(dir, "own", "private", "private_key.pem");
  await cm.dispose();
  ps.trustUserCert(userCert);
  await ps.start();
  pki = await trustedPki(ps);
});

test.after(async () => {
  for (const s of sources) await s.stop();
  await ps.stop();
  removeTempDirs();
});

test("unknown server certificate: refused, kept in rejected/, accepted only after `glassd pki trust <thumbprint>`", async () => {
  const dir = tempDir("glassd-opcua-fresh-pki-");
  const { cm } = await openPki(dir, { applicationUri: APP_URI });
  await cm.dispose();
  ps.trustClient(pkiPaths(dir).ownCert, "fresh.pem");
  const serverThumb = thumbprintOf(toDer(readFileSync(ps.certificateFile)));
  const { logger, lines } = capture();
  const src = source({ pkiDir: dir, logger });
  await src.start(new AbortController().signal);
  const st = src.stats();
  assert.is(st.connected, false, "never auto-accepted");
  assert.is(st.untrusted_server_certificate, serverThumb);
  assert.is(
    st.last_error,
    `server certificate untrusted: run glassd pki trust ${serverThumb} (it is in ${pkiPaths(dir).rejected})`,
  );
  assert.ok(
    lines.some((l) => l.includes("server certificate untrusted")),
    "logged",
  );
  const listed = listCerts(dir);
  assert.equal(listed.trusted, []);
  assert.equal(
    listed.rejected.map((c) => c.thumbprint),
    [serverThumb],
  );
  // Still refused on the next attempts.
  await waitUntil("another refused attempt", () => src.stats().connect_failures >= 2);
  assert.is(src.stats().connected, false);

  const out: string[] = [];
  const err: string[] = [];
  const listCode = await runPkiCommand(
    { dataDir: "/nonexistent", pkiDir: dir, words: ["list"] },
    (s) => out.push(s),
    (s) => err.push(s),
  );
  assert.is(listCode, 0);
  assert.match(out.join("\n"), new RegExp(`rejected \\(1\\)[\\s\\S]*${serverThumb}`));
  const code = await runPkiCommand(
    { dataDir: "/nonexistent", pkiDir: dir, words: ["trust", serverThumb.slice(0, 12).toUpperCase()] },
    (s) => out.push(s),
    (s) => err.push(s),
  );
  assert.is(code, 0, err.join("\n"));
  assert.match(out.at(-1)!, new RegExp(`^trusted ${serverThumb}`));
  assert.equal(listCerts(dir).rejected, []);
  await waitUntil("connected after the trust", () => src.stats().connected, 15_000);
  assert.is(src.stats().untrusted_server_certificate, null);
  await src.stop();

  // ...and `reject` takes the trust back.
  const rc = await runPkiCommand(
    { dataDir: "/x", pkiDir: dir, words: ["reject", serverThumb] },
    (s) => out.push(s),
    (s) => err.push(s),
  );
  assert.is(rc, 0);
  assert.equal(listCerts(dir).trusted, []);
  const unknown = await runPkiCommand(
    { dataDir: "/x", pkiDir: dir, words: ["trust", "deadbeefdeadbeef"] },
    (s) => out.push(s),
    (s) => err.push(s),
  );
  assert.is(unknown, 1);
  assert.match(err.at(-1)!, /no certificate with thumbprint deadbeefdeadbeef in rejected/);
  assert.is(
    await runPkiCommand(
      { dataDir: "/x", pkiDir: dir, words: ["trust"] },
      () => {},
      () => {},
    ),
    2,
  );
  assert.is(
    await runPkiCommand(
      { dataDir: "/x", pkiDir: dir, words: ["frobnicate"] },
      () => {},
      () => {},
    ),
    2,
  );
});

test("wrong password: a clear error naming the user, retried, the password never logged", async () => {
  const { logger, lines } = capture();
  const secret = "wrong-password-xyzzy";
  const src = source({
    identity: { type: "username", username: USERS.operator.name, passwordFile: passwordFile(secret) },
    logger,
  });
  await src.start(new AbortController().signal);
  const st = src.stats();
  assert.is(st.connected, false);
  assert.is(
    st.last_error,
    `the OPC UA server refused user "${USERS.operator.name}": wrong user name or password (source.opcua.identity.password_file)`,
  );
  await waitUntil("retried", () => src.stats().connect_failures >= 2);
  await src.stop();
  assert.ok(lines.length > 0);
  assert.not.ok(
    lines.some((l) => l.includes(secret)),
    "password not in the log",
  );
  assert.not.ok(lines.some((l) => l.includes(USERS.operator.password)));
});

test("anonymous where the server requires a user: refused with a clear error", async () => {
  const src = source({ identity: { type: "anonymous" } });
  await src.start(new AbortController().signal);
  assert.is(src.stats().connected, false);
  assert.match(src.stats().last_error ?? "", /refused anonymous access: the server requires a user/);
  await src.stop();
});

test("an unreadable password file is named in the error", async () => {
  const src = source({ identity: { type: "username", username: "x", passwordFile: "/nonexistent/pw" } });
  await src.start(new AbortController().signal);
  assert.match(
    src.stats().last_error ?? "",
    /cannot read source\.opcua\.identity\.password_file \/nonexistent\/pw: ENOENT/,
  );
  await src.stop();
});

for (const [mode, policy] of [
  ["SignAndEncrypt", "Basic256Sha256"],
  ["SignAndEncrypt", "Aes128_Sha256_RsaOaep"],
  ["SignAndEncrypt", "Aes256_Sha256_RsaPss"],
  ["Sign", "Aes256_Sha256_RsaPss"],
] as const) {
  test(`${mode} / ${policy} with user name and password: data arrives`, async () => {
    const src = source({ securityMode: mode, securityPolicy: policy });
    await src.start(new AbortController().signal);
    assert.is(src.stats().connected, true, src.stats().last_error ?? "");
    await waitUntil("samples", () => src.stats().samples_durable >= DEFAULT_TAGS.length);
    await src.stop();
  });
}

test("X.509 user certificate identity over SignAndEncrypt", async () => {
  const src = source({ identity: { type: "certificate", certFile: userCert, keyFile: userKey } });
  await src.start(new AbortController().signal);
  assert.is(src.stats().connected, true, src.stats().last_error ?? "");
  await waitUntil("samples", () => src.stats().samples_durable > 0);
  await src.stop();
});

test("security None is refused by a server that offers only Sign/SignAndEncrypt", async () => {
  const src = source({ securityMode: "None", securityPolicy: "None" });
  await src.start(new AbortController().signal);
  assert.is(src.stats().connected, false);
  assert.is(
    src.stats().last_error,
    `the server at ${ps.endpoint} offers no endpoint with security None/None: change source.opcua.security_mode/security_policy`,
  );
  await src.stop();
});

test.run();
