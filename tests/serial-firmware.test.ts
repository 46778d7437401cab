/*
 * The reference firmware's own unit test (C: CRC, COBS, golden frames, ring, device state machine), run from the
 * TypeScript suite so that `npm test` covers it, plus the host build's command line.
 */
import { spawnSync } from "node:child_process";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FIRMWARE_BIN, FIRMWARE_DIR } from "./fixtures/serial-pty.js";

test("make -C firmware-bridge/firmware test: the C unit test passes against the golden frames", () => {
  const r = spawnSync("make", ["-C", FIRMWARE_DIR, "test"], { encoding: "utf8", timeout: 120_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.is(r.status, 0, out);
  const m = /test_core: (\d+) checks, (\d+) failed/.exec(out);
  assert.ok(m, out);
  assert.ok(Number(m![1]) > 1000, `checks run: ${m![1]}`);
  assert.is(m![2], "0");
});

test("the host build documents and validates its options", () => {
  const help = spawnSync(FIRMWARE_BIN, ["--help"], { encoding: "utf8" });
  assert.is(help.status, 0);
  assert.match(help.stdout, /--port PATH/);
  const bad = spawnSync(FIRMWARE_BIN, ["--port", "/nonexistent", "--ring", "0"], { encoding: "utf8" });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--ring must be an integer in \[1, 1024\]/);
});

test.run();
