import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS, defaultConfig, loadConfig, validateConfig } from "../src/config/index.js";
import { configJsonSchema } from "../src/config/json-schema.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-config-"));
const write = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const precedence = suite("config precedence");

precedence("defaults: twin as the line, port 8000, DOMAIN.md tags", () => {
  const r = loadConfig({ env: {}, cwd: dir });
  assert.is(r.safeMode, false);
  assert.equal(r.issues, []);
  assert.is(r.config.server.port, 8000);
  assert.is(r.config.source.type, "twin");
  assert.is(r.config.data_dir, "./data");
  assert.is(r.config.tags.length, 15);
  assert.equal(
    r.config.tags.map((t) => t.id),
    DEFAULT_TAGS.map((t) => t.id),
  );
});

precedence("file < .env < environment < command line, key by key", () => {
  const file = write(
    "a.yaml",
    "server:\n  port: 8101\n  host: 127.0.0.2\nline:\n  id: Line_F\npipeline:\n  tick_interval_ms: 500\n",
  );
  const envFile = write("a.env", "GLASSD_SERVER__PORT=8102\nGLASSD_PIPELINE__WINDOW_S=120\n");
  const base = { configFile: file, envFile, cwd: dir };
  let r = loadConfig({ ...base, env: {} });
  assert.is(r.config.server.port, 8102, ".env beats file");
  assert.is(r.config.server.host, "127.0.0.2", "file value kept where nothing overrides");
  assert.is(r.config.line.id, "Line_F");
  assert.is(r.config.pipeline.window_s, 120);
  assert.is(r.config.pipeline.tick_interval_ms, 500);
  r = loadConfig({ ...base, env: { GLASSD_SERVER__PORT: "8103", GLASSD_PIPELINE__WINDOW_S: "130" } });
  assert.is(r.config.server.port, 8103, "environment beats .env");
  assert.is(r.config.pipeline.window_s, 130);
  r = loadConfig({ ...base, env: { GLASSD_SERVER__PORT: "8103" }, cli: { "server.port": "8104" } });
  assert.is(r.config.server.port, 8104, "command line beats environment");
  assert.is(r.files.length, 2);
});

precedence("JSON config files and short env aliases", () => {
  const file = write(
    "b.json",
    JSON.stringify({ data_dir: "/tmp/x", log: { level: "debug", levels: { twin: "warn" } } }),
  );
  const r = loadConfig({ configFile: file, env: { GLASSD_PORT: "9001", GLASSD_HOST: "::1" }, cwd: dir });
  assert.is(r.safeMode, false, JSON.stringify(r.issues));
  assert.is(r.config.data_dir, "/tmp/x");
  assert.is(r.config.log.levels.twin, "warn");
  assert.is(r.config.server.port, 9001);
  assert.is(r.config.server.host, "::1");
});

precedence("a config file's tag list replaces the default dictionary", () => {
  const tags = [
    { id: "t1", unit: "°C", stage: "furnace", normal: { min: 1, max: 2 }, limits: { min: 0, max: 3 }, period_ms: 1000 },
  ];
  const r = validateConfig({ tags });
  assert.ok(r.ok);
  if (r.ok) {
    assert.is(r.config.tags.length, 1);
    assert.equal(r.config.tags[0]?.sources, {}, "defaults filled inside tags");
  }
});

const errors = suite("config errors");

errors("unknown keys and bad values name the path, the reason and the source", () => {
  const file = write("c.yaml", "server:\n  port: 70000\n  colour: blue\npipeline:\n  tick_interval_ms: fast\n");
  const r = loadConfig({ configFile: file, env: { GLASSD_LOG__LEVEL: "loud", GLASSD_BOGUS: "1" }, cwd: dir });
  assert.is(r.safeMode, true);
  const text = r.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
  assert.match(text, "/bogus: unknown key (from environment GLASSD_BOGUS)");
  // Source-level problems stop validation; fix them and the schema errors show.
  const r2 = loadConfig({ configFile: file, env: { GLASSD_LOG__LEVEL: "loud" }, cwd: dir });
  const t2 = r2.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
  assert.match(t2, "/server/port: must be <= 65535 (set in the config file)");
  assert.match(t2, "/server/colour: unknown key");
  assert.match(t2, "/pipeline/tick_interval_ms: must be integer (set in the config file)");
  assert.match(t2, "/log/level: must be one of the allowed values (set in the environment)");
});

errors("model isolation takes worker or inline, per the tabular models and vision", () => {
  const file = write("iso.yaml", "inference:\n  isolation: worker\n  vision_isolation: thread\n");
  const r = loadConfig({ configFile: file, env: {}, cwd: dir });
  const text = r.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
  assert.match(text, "/inference/vision_isolation: must be one of the allowed values (set in the config file)");
  assert.not.match(text, "/inference/isolation:");
  const ok = loadConfig({
    configFile: write("iso2.yaml", "inference:\n  vision_isolation: inline\n"),
    env: {},
    cwd: dir,
  });
  assert.equal(ok.issues, []);
  assert.is(ok.config.inference.vision_isolation, "inline");
  assert.is(ok.config.inference.isolation, "inline");
});

errors("a broken file is reported with its path, not thrown", () => {
  const bad = write("d.yaml", "server: [unclosed\n");
  const r = loadConfig({ configFile: bad, env: {}, cwd: dir });
  assert.is(r.safeMode, true);
  assert.match(r.issues[0]?.message ?? "", bad);
  const missing = loadConfig({ configFile: join(dir, "nope.yaml"), env: {}, cwd: dir });
  assert.match(missing.issues[0]?.message ?? "", /ENOENT|no such file/);
  const ext = loadConfig({ configFile: write("e.toml", "x=1"), env: {}, cwd: dir });
  assert.match(ext.issues[0]?.message ?? "", /unsupported extension/);
});

errors("cross-field rules: duplicate tags, bands outside limits, TLS pair", () => {
  const t = structuredClone(DEFAULT_TAGS);
  t.push(structuredClone(t[0]!));
  t[1]!.normal = { min: 0, max: 99_999 };
  const r = validateConfig({ tags: t, server: { tls_cert_file: "/x.pem" } });
  assert.not.ok(r.ok);
  if (!r.ok) {
    const text = r.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
    assert.match(text, '/tags/15/id: duplicate tag id "batch_flow"');
    assert.match(text, "/tags/1/normal: normal band must lie within the hard limits");
    assert.match(text, "/server: tls_cert_file and tls_key_file must be given together");
  }
});

errors("secrets cannot be put in the config in clear", () => {
  const r = validateConfig({ auth: { admin_password: "hunter22" } });
  assert.not.ok(r.ok);
  if (!r.ok) assert.equal(r.issues, [{ path: "/auth/admin_password", message: "unknown key" }]);
});

errors("safe mode keeps valid reachability settings and turns sources off", () => {
  const file = write("f.yaml", "server:\n  port: 8200\ntwin:\n  speed: -4\n");
  const r = loadConfig({ configFile: file, env: {}, cwd: dir });
  assert.is(r.safeMode, true);
  assert.is(r.config.server.port, 8200, "the port the operator chose still holds, so they can reach /health");
  assert.is(r.config.source.type, "none");
  assert.is(r.config.twin.speed, 1);
});

const schema = suite("config schema");

schema("config/schema.json is generated from the schema and current (npm run gen:schema)", () => {
  const committed = readFileSync(new URL("../config/schema.json", import.meta.url), "utf8");
  assert.is(committed, configJsonSchema());
  const s = JSON.parse(committed);
  assert.is(s.additionalProperties, false);
  assert.is(s.required, undefined, "sections with defaults are optional in a file");
  assert.ok(s.properties.server.properties.port.description.includes("restart"));
});

schema("defaults validate and are stable", () => {
  assert.equal(defaultConfig(), defaultConfig());
});

precedence.run();
errors.run();
schema.run();
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const files = suite("shipped config files");
files("config/example-line.yaml is valid", () => {
  const r = loadConfig({
    configFile: new URL("../config/example-line.yaml", import.meta.url).pathname,
    env: {},
    cwd: dir,
  });
  assert.equal(r.issues, []);
  assert.is(r.config.server.allowed_origins[0], "https://hmi.plant.local");
});
files.run();
