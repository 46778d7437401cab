import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Auth } from "../src/api/auth/index.js";
import { type AccountArgs, runAccountCommand } from "../src/cli/accounts.js";
import { validateConfig } from "../src/config/index.js";
import { silentLogger } from "../src/core/logger.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-accounts-"));
const pw = join(dir, "pw");
writeFileSync(pw, "correct-horse-battery\n");
const adminPw = join(dir, "admin-pw");
writeFileSync(adminPw, "admin-password-1\n");
const r = validateConfig({ data_dir: dir, auth: { admin_password_file: adminPw } });
if (!r.ok) throw new Error("config");
const config = r.config;

async function run(a: AccountArgs) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAccountCommand(
    config,
    a,
    (s) => out.push(s),
    (s) => err.push(s),
  );
  return { code, out: out.join("\n"), err: err.join("\n") };
}

test("user add → the new user can log in with the password from the file (newline trimmed), with its role", async () => {
  const res = await run({ group: "user", words: ["add", "op1"], role: "operator", passwordFile: pw });
  assert.is(res.code, 0, res.err);
  const auth = new Auth({ config, logger: silentLogger });
  await auth.init();
  const login = await auth.login("op1", "correct-horse-battery");
  assert.is(login.role, "operator");
  const list = await run({ group: "user", words: ["list"] });
  assert.match(list.out, /^admin\tadmin/m);
  assert.match(list.out, /^op1\toperator/m);
  assert.not.match(list.out + list.err, "correct-horse-battery", "passwords are never printed");
});

test("user role / passwd / remove", async () => {
  assert.is((await run({ group: "user", words: ["role", "op1", "engineer"] })).code, 0);
  writeFileSync(pw, "another-long-password");
  assert.is((await run({ group: "user", words: ["passwd", "op1"], passwordFile: pw })).code, 0);
  const auth = new Auth({ config, logger: silentLogger });
  await auth.init();
  assert.is((await auth.login("op1", "another-long-password")).role, "engineer");
  assert.is((await run({ group: "user", words: ["remove", "op1"] })).code, 0);
  assert.not.match((await run({ group: "user", words: ["list"] })).out, "op1");
});

test("api-key create prints the key once; it authenticates with its role; revoke stops it", async () => {
  const res = await run({ group: "api-key", words: ["create", "scada"], role: "viewer" });
  assert.is(res.code, 0);
  const key = res.out.trim();
  assert.match(key, /^gk_/);
  const auth = new Auth({ config, logger: silentLogger });
  await auth.init();
  assert.is((await auth.authenticate(key)).role, "viewer");
  const list = await run({ group: "api-key", words: ["list"] });
  assert.match(list.out, "scada");
  assert.not.match(list.out, key, "list never shows the key");
  assert.is((await run({ group: "api-key", words: ["revoke", "scada"] })).code, 0);
  const fresh = new Auth({ config, logger: silentLogger });
  await fresh.init();
  try {
    await fresh.authenticate(key);
    assert.unreachable("revoked key must fail");
  } catch (e) {
    assert.is((e as { status: number }).status, 401);
  }
});

test("usage errors exit 2 with a clear message; passwords are refused on argv", async () => {
  let res = await run({ group: "user", words: ["add", "x"], role: "god", passwordFile: pw });
  assert.is(res.code, 2);
  assert.match(res.err, "--role must be viewer, operator, engineer or admin");
  res = await run({ group: "user", words: ["add", "x"], role: "viewer" });
  assert.is(res.code, 2);
  assert.match(res.err, "never on the command line");
  res = await run({ group: "user", words: ["frobnicate"] });
  assert.is(res.code, 2);
  res = await run({ group: "user", words: ["add"], role: "viewer", passwordFile: pw });
  assert.is(res.code, 2);
  assert.match(res.err, "missing NAME");
});

test("a short password is refused (exit 1) and nothing is added", async () => {
  writeFileSync(pw, "short");
  const res = await run({ group: "user", words: ["add", "shorty"], role: "viewer", passwordFile: pw });
  assert.is(res.code, 1);
  assert.not.match((await run({ group: "user", words: ["list"] })).out, "shorty");
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
