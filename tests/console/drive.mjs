// Drives the operator console in a real headless Chromium (Debian's) against a running
// tributary: node drive.mjs. Environment: CONSOLE_URL (http://127.0.0.1:PORT), CONSOLE_TOKEN
// (the admin token), CONSOLE_PARTITIONS (how many the topic has), CONSOLE_REASON (a dead-letter
// reason the stream has), CONSOLE_TABLE (projection: table, a template projection's table
// reached), CONSOLE_SHOTS (a directory for the screenshots). Exits 0 when every
// check holds; prints what failed otherwise.
import { chromium } from "playwright-core";
import { mkdirSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.CONSOLE_URL;
const token = process.env.CONSOLE_TOKEN;
const partitions = Number(process.env.CONSOLE_PARTITIONS);
const reason = process.env.CONSOLE_REASON;
const reachedTable = process.env.CONSOLE_TABLE;
const shots = process.env.CONSOLE_SHOTS;
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), "tributary-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: { width: 1280, height: 800 },
});
const problems = [];
// The one refusal the checks provoke (a wrong token): Chromium logs any 4xx as a console error.
let expectRefusal = false;
const outside = [];
try {
  const page = browser.pages()[0] || (await browser.newPage());
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expectRefusal && m.text().includes("status of 401")) return;
    problems.push("console error: " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("request", (r) => { const u = new URL(r.url()); if (u.hostname !== "127.0.0.1") outside.push(r.url()); });
  const timeout = 30000;
  // page.waitForFunction evaluates strings inside the page, which the strict CSP refuses (as it
  // should): poll with evaluate, which the DevTools protocol runs outside the page's policy.
  const until = async (fn, arg, opts) => {
    const deadline = Date.now() + ((opts && opts.timeout) || timeout);
    for (;;) {
      if (await page.evaluate(fn, arg)) return;
      if (Date.now() > deadline) throw new Error("timed out waiting for " + fn.toString().slice(0, 120));
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const step = async (what, f) => {
    try { await f(); } catch (e) { throw new Error(what + ": " + e.message); }
  };

  await step("the page loads with its strict CSP", async () => {
    const r = await page.goto(base + "/");
    if (r.status() !== 200) throw new Error("status " + r.status());
    if (!(r.headers()["content-security-policy"] || "").includes("default-src 'none'")) throw new Error("no strict CSP");
  });
  await step("the partitions and their lag show", async () => {
    await until((n) => document.querySelectorAll("#partitions tbody tr td:nth-child(5)").length === n, partitions, { timeout });
  });
  await step("the tables a template projection reached show", async () => {
    await until((t) => [...document.querySelectorAll("#tables-reached li")].some((li) => li.textContent === t), reachedTable, { timeout });
  });
  await step("the rate chart moves while events flow", async () => {
    await until(() => Number(document.getElementById("rate-now").textContent) > 0, null, { timeout: 60000 });
  });
  await step("the charts have a few samples to draw", async () => {
    await until(async () => (await (await fetch("/console/snapshot")).json()).series.length >= 4, null, { timeout: 60000 });
    await new Promise((r) => setTimeout(r, 2500));
  });
  await page.screenshot({ path: join(shots, "console-1280x800.png"), fullPage: true });

  await step("admin controls wait for the token", async () => {
    if (!(await page.locator("#pause").isDisabled())) throw new Error("pause is enabled before a token is given");
  });
  await step("a restart with a wrong token is refused", async () => {
    await page.fill("#token", "wrong-token-0123456789abcdef");
    await page.press("#token", "Enter");
    expectRefusal = true;
    await page.click("button[data-actor=parser]");
    await until(() => document.getElementById("admin-answer").textContent.includes("HTTP 401"), null, { timeout });
    expectRefusal = false;
  });
  const restarts = async () => Number(await page.locator("#actors tbody tr", { hasText: "parser" }).locator("td:nth-child(3)").textContent());
  const before = await restarts();
  await step("a restart with the right token counts", async () => {
    await page.fill("#token", token);
    await page.press("#token", "Enter");
    await page.click("button[data-actor=parser]");
    await until(() => document.getElementById("admin-answer").textContent.includes("restarting parser"), null, { timeout });
    await until((b) => {
      const row = [...document.querySelectorAll("#actors tbody tr")].find((r) => r.cells[0].textContent === "parser");
      return row && Number(row.cells[2].textContent) > b;
    }, before, { timeout });
  });
  await step("a dead letter of a known reason appears and opens", async () => {
    await page.fill("#f-reason", reason);
    // Keyboard only: Enter in the filter lists, Enter on a row opens it.
    await page.press("#f-reason", "Enter");
    await page.waitForSelector("#dead-letters tbody tr.link", { timeout });
    await page.focus("#dead-letters tbody tr.link");
    await page.keyboard.press("Enter");
    await until((r) => document.getElementById("dl-reason").textContent === r, reason, { timeout });
    const shown = await page.locator("#dl-payload").textContent();
    if (!shown || !shown.length) throw new Error("no payload shown");
  });
  await page.screenshot({ path: join(shots, "console-dead-letter.png"), fullPage: true });
  await step("a redrive dry run shows its counts", async () => {
    await page.click("#redrive-dry");
    await until(() => document.getElementById("redrive-answer").textContent.includes("\"selected\""), null, { timeout });
    if (await page.locator("#redrive-real").isDisabled()) throw new Error("the real redrive stays off after a dry run");
  });
  await step("pause and resume", async () => {
    await page.click("#pause");
    await until(() => document.getElementById("paused").textContent === "paused", null, { timeout });
    await page.click("#resume");
    await until(() => document.getElementById("paused").textContent === "consuming", null, { timeout });
  });
  await step("readable at a phone's width, in the dark theme", async () => {
    await page.emulateMedia({ colorScheme: "dark" });
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error("the page is " + overflow + " px wider than the screen");
    await page.screenshot({ path: join(shots, "console-phone-dark.png"), fullPage: true });
  });
  await step("the token is nowhere but memory", async () => {
    const kept = await page.evaluate(() => [document.cookie, localStorage.length, sessionStorage.length, location.href]);
    if (kept[0] || kept[1] || kept[2] || kept[3].includes("token")) throw new Error("kept: " + JSON.stringify(kept));
  });
} catch (e) {
  problems.push(e.message);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
if (outside.length) problems.push("requests left 127.0.0.1: " + outside.join(", "));
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("console checks passed; screenshots in " + shots);
