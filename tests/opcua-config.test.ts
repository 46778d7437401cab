/*
 * OPC UA source configuration and the pieces without a server: the `source.opcua` schema (defaults, closed objects),
 * bad values named by field, status code → quality, variant → sample value, `glassd pki show/list` on a fresh folder.
 */
import { existsSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runPkiCommand } from "../src/cli/pki.js";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { TagConfig } from "../src/config/schema.js";
import { ValidationError } from "../src/core/errors.js";
import {
  OpcuaSectionSchema,
  OpcuaSource,
  type OpcuaSourceOptions,
  pkiPaths,
  qualityOf,
  sampleValue,
  settingsFromConfig,
} from "../src/ingest/opcua/index.js";
import { removeTempDirs, tempDir } from "./fixtures/opcua-plant.js";

test.after(() => removeTempDirs());

function issues(over: Partial<OpcuaSourceOptions>, tags: readonly TagConfig[] = DEFAULT_TAGS): string[] {
  try {
    new OpcuaSource({ endpoint: "opc.tcp://127.0.0.1:4840", pkiDir: "/tmp/x", tags, ...over });
    return [];
  } catch (err) {
    assert.instance(err, ValidationError);
    return (err as ValidationError).issues.map((i) => `${i.path}: ${i.message}`);
  }
}

test("schema: an empty section gets every default; unknown keys and bad values are refused", () => {
  const s = Value.Default(OpcuaSectionSchema, {}) as Record<string, unknown>;
  assert.ok(Value.Check(OpcuaSectionSchema, s), [...Value.Errors(OpcuaSectionSchema, s)].map((e) => e.path).join());
  assert.is(s.enabled, false);
  assert.is(s.security_mode, "SignAndEncrypt");
  assert.is(s.security_policy, "Basic256Sha256");
  assert.equal(s.identity, { type: "anonymous" });
  assert.is(s.batch_ms, 100);
  assert.is(s.watchdog_factor, 3);
  const settings = settingsFromConfig(s as never, "/var/lib/glassd");
  assert.is(settings.pkiDir, "/var/lib/glassd/pki");
  assert.is(settings.retry.maxRetry, Number.POSITIVE_INFINITY);
  const bad = (o: object) =>
    [...Value.Errors(OpcuaSectionSchema, Value.Default(OpcuaSectionSchema, o))].map((e) => e.path);
  assert.ok(bad({ endpoint: "http://plc:4840" }).includes("/endpoint"));
  assert.ok(bad({ frobnicate: 1 }).length > 0, "closed object");
  assert.ok(
    bad({ identity: { type: "username", username: "u", password: "in-clear" } }).length > 0,
    "no clear password",
  );
  assert.ok(bad({ security_policy: "Basic128Rsa15" }).includes("/security_policy"));
  assert.ok(bad({ batch_ms: 5 }).includes("/batch_ms"));
});

test("bad settings are named by field, all at once", () => {
  assert.equal(issues({}), []);
  const got = issues({
    endpoint: "opc.tcp://plc:99999",
    securityMode: "None",
    securityPolicy: "Basic256Sha256",
    batchMs: 5,
    watchdogFactor: 1,
    retry: { initialDelayMs: 5000, maxDelayMs: 100, maxRetry: 3, jitter: 2 },
    identity: { type: "username", username: "", passwordFile: "" },
  });
  for (const f of [
    "/source/opcua/endpoint: port 99999",
    "/source/opcua/security_policy: security_mode None needs security_policy None",
    "/source/opcua/batch_ms",
    "/source/opcua/watchdog_factor",
    "/source/opcua/retry/max_delay_ms",
    "/source/opcua/retry/jitter",
    "/source/opcua/identity/username",
    "/source/opcua/identity/password_file",
  ])
    assert.ok(
      got.some((g) => g.startsWith(f)),
      `${f} in ${got.join(" | ")}`,
    );
  assert.match(issues({ endpoint: "tcp://plc" }).join(), /\/source\/opcua\/endpoint: must be opc\.tcp:\/\//);
  assert.match(issues({ securityMode: "Sign", securityPolicy: "None" }).join(), /needs a policy other than None/);
});

test("tag mapping problems name the tag and its index", () => {
  const t = DEFAULT_TAGS[0]!;
  const tags: TagConfig[] = [
    { ...t, id: "both", sources: { opcua: { node_id: "ns=1;s=x", browse_path: "/1:a" } } },
    { ...t, id: "neither", sources: { opcua: {} } },
    { ...t, id: "bad_id", sources: { opcua: { node_id: "Line_A.bad" } } },
    { ...t, id: "bad_path", sources: { opcua: { browse_path: "Line_A/bad" } } },
    { ...t, id: "fine", sources: { opcua: { node_id: "ns=2;i=1042" } } },
  ];
  const got = issues({}, tags);
  assert.is(got.length, 4, got.join(" | "));
  assert.match(got[0]!, /^\/tags\/0\/sources\/opcua: both: give node_id or browse_path, not both/);
  assert.match(got[1]!, /^\/tags\/1\/sources\/opcua: neither: needs node_id or browse_path/);
  assert.match(got[2]!, /^\/tags\/2\/sources\/opcua\/node_id: bad_id: "Line_A.bad" is not an OPC UA node id/);
  assert.match(got[3]!, /^\/tags\/3\/sources\/opcua\/browse_path: bad_path/);
});

test("status code severity → quality: GoodClamped is good, Uncertain… uncertain, Bad… bad", () => {
  assert.is(qualityOf(0x00000000), "good"); // Good
  assert.is(qualityOf(0x00300000), "good"); // GoodClamped
  assert.is(qualityOf(0x40900000), "uncertain"); // UncertainLastUsableValue
  assert.is(qualityOf(0x408f0000), "uncertain"); // UncertainSensorNotAccurate
  assert.is(qualityOf(0x808b0000), "bad"); // BadSensorFailure
  assert.is(qualityOf(0x80340000), "bad"); // BadNodeIdUnknown
  assert.is(qualityOf(0xc0000000), "bad"); // reserved severity
});

test("variant values: numbers kept, booleans 0/1, exact 64-bit integers as numbers, the rest passed on raw", () => {
  assert.is(sampleValue(12.5), 12.5);
  assert.is(sampleValue(true), 1);
  assert.is(sampleValue(false), 0);
  assert.is(sampleValue([0, 5]), 5);
  assert.is(sampleValue([1, 0]), 2 ** 32);
  assert.equal(sampleValue([0x7fffffff, 0xffffffff]), [0x7fffffff, 0xffffffff], "not exact: left to validation");
  assert.is(sampleValue("12.5"), "12.5");
  assert.is(sampleValue(null), null);
});

test("glassd pki show creates the application certificate on first use; list on an empty PKI", async () => {
  const dir = tempDir("glassd-opcua-cli-");
  const out: string[] = [];
  const err: string[] = [];
  assert.is(
    await runPkiCommand(
      { dataDir: dir, words: ["show"] },
      (s) => out.push(s),
      (s) => err.push(s),
    ),
    0,
  );
  const p = pkiPaths(`${dir}/pki`);
  assert.ok(existsSync(p.ownCert) && existsSync(p.ownKey));
  assert.match(err.join(), /created glassd's application certificate/);
  assert.match(out.join("\n"), /thumbprint\s+[0-9a-f]{40}/);
  assert.match(out.join("\n"), /application_uri urn:.*:glassd:opcua-client/);
  out.length = 0;
  assert.is(
    await runPkiCommand(
      { dataDir: dir, words: ["list"] },
      (s) => out.push(s),
      (s) => err.push(s),
    ),
    0,
  );
  assert.match(out.join("\n"), /trusted \(0\):\nrejected \(0\):/);
  assert.is(
    await runPkiCommand(
      { dataDir: dir, words: ["trust", "not-hex"] },
      () => {},
      (s) => err.push(s),
    ),
    1,
  );
  assert.match(err.at(-1)!, /"not-hex" is not a thumbprint/);
  assert.is(
    await runPkiCommand(
      { dataDir: dir, words: ["trust", "/nonexistent.pem"] },
      () => {},
      (s) => err.push(s),
    ),
    1,
  );
});

test.run();
