import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createFileExclusive, writeFileAtomic } from "../src/core/files.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-files-"));

test("regression (empty token-secret after a crash): exclusive create publishes complete content or nothing", async () => {
  const p = join(dir, "token-secret");
  // Ten racing creators: exactly one wins, and the file holds that winner's whole content.
  const contents = Array.from({ length: 10 }, (_, i) => `${String(i).repeat(64)}\n`);
  const won = await Promise.all(contents.map((c) => createFileExclusive(p, c)));
  assert.is(won.filter(Boolean).length, 1);
  const text = readFileSync(p, "utf8");
  assert.is(text, contents[won.indexOf(true)]);
  assert.is(statSync(p).mode & 0o777, 0o600);
  // The content never appears under the final name before it is complete: no temp files stay behind either.
  assert.equal(
    readdirSync(dir).filter((f) => f.endsWith(".tmp")),
    [],
  );
  assert.is(await createFileExclusive(p, "other"), false, "an existing file is never replaced");
  assert.is(readFileSync(p, "utf8"), text);
});

test("atomic replace: mode 0600, content replaced whole, no temp files left", async () => {
  const p = join(dir, "users.json");
  await writeFileAtomic(p, '{"users":[]}');
  await writeFileAtomic(p, '{"users":[1]}');
  assert.is(readFileSync(p, "utf8"), '{"users":[1]}');
  assert.is(statSync(p).mode & 0o777, 0o600);
  assert.equal(
    readdirSync(dir).filter((f) => f.endsWith(".tmp")),
    [],
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
