import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TestDaemon, USERS } from "./helpers/daemon.js";

// The built-in HMI page in a real browser (Debian's Chromium; installed by .ci/run), against the daemon on the twin.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
let daemon: TestDaemon;
let browser: Browser;

/** Polls from Node (the page's strict CSP forbids the string evaluation some page-side waits use). */
async function poll(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out waiting for the page");
    await new Promise((r) => setTimeout(r, 100));
  }
}

test.before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  daemon = await TestDaemon.start({ source: "twin", tickIntervalMs: 200 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

test.after(async () => {
  await browser?.close();
  await daemon?.stop();
});

test("an operator logs in and sees live tag values, MIK-1 counts and honest stage statuses", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${daemon.base}/`);
  await page.fill("#username", USERS.operator.username);
  await page.fill("#password", USERS.operator.password);
  await page.click("button[type=submit]");
  await page.waitForSelector("#ws.ok", { timeout: 15_000 });
  // A live value for a tag the twin produces, formatted as a number, arriving over the WebSocket.
  const row = page.locator('tr[data-tag="furnace_temperature"] td.num').first();
  await poll(async () => /^\d/.test((await row.textContent()) ?? ""));
  const value = Number(await row.textContent());
  assert.ok(value > 1400 && value < 1600, `furnace_temperature shown as ${value}`);
  const firstTick = await page.textContent("#tick");
  await poll(async () => (await page.textContent("#tick")) !== firstTick);
  // Right after start the forecaster's window is still filling: the models stage says so and why, and the risk
  // panel shows the reason instead of numbers; nothing pretends to predict.
  assert.is(await page.textContent('tr[data-stage="models"] td:nth-child(2)'), "unavailable");
  assert.match((await page.textContent('tr[data-stage="models"] td:nth-child(4)')) ?? "", /window filling/);
  assert.match((await page.textContent("#riskwhy")) ?? "", /forecaster window filling/);
  // No forecast yet: the forecast columns (p +15/+60/+240 min) of every row say "—"; vision rates may already show.
  for (const cell of await page.locator("#risk tbody tr td:nth-child(4)").allTextContents()) assert.is(cell, "—");
  // The sensor graph waits for its node windows too: the tag table's fault column says "—" and the reason is shown.
  for (const cell of await page.locator("#tags tbody tr td:nth-child(6)").allTextContents()) assert.is(cell, "—");
  assert.match((await page.textContent("#graphwhy")) ?? "", /sensor graph: .*window/);
  assert.match((await page.textContent("#health")) ?? "", /health: (ok|degraded|starting)/);
  assert.match((await page.textContent("#who")) ?? "", "operator");
  await page.screenshot({ path: join(tmpdir(), "glassd-dashboard.png"), fullPage: true });
  assert.equal(errors, []);
  await page.close();
});

test("a wrong password shows the server's message and no data", async () => {
  const page = await browser.newPage();
  await page.goto(`${daemon.base}/`);
  await page.fill("#username", USERS.viewer.username);
  await page.fill("#password", "not-the-password");
  await page.click("button[type=submit]");
  await poll(async () => ((await page.textContent("#login-error")) ?? "").length > 0);
  assert.match((await page.textContent("#login-error")) ?? "", "invalid username or password");
  assert.ok(await page.isHidden("#app"));
  await page.close();
});

test("the page is served with a strict CSP and needs no external asset", async () => {
  const res = await fetch(`${daemon.base}/`);
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-security-policy") ?? "", "default-src 'none'");
  const html = await res.text();
  assert.not.match(html, /https?:\/\//, "no external URLs: the plant PC has no internet");
});

test.run();
