// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core
// from tools/), as tests/dashboard.rs sets it up. Exits non-zero with the reason on any failure.
//
// Environment: PLAYWRIGHT_CORE (path of playwright-core's index.mjs), DASHBOARD_URL
// (http://127.0.0.1:PORT/api/dashboard), SEQUENCE_ID (a finished HelloSequence), WAITING_ID (a
// running ApprovalWorkflow), FAILED_ID (a failed HelloSequence), VERSIONED_ID (a running ConfirmOrder,
// version 2),
// SCREENSHOT (where to save the instance view).
import assert from "node:assert/strict";

const { chromium } = await import(process.env.PLAYWRIGHT_CORE);
const base = process.env.DASHBOARD_URL;
const { SEQUENCE_ID: sequence, WAITING_ID: waiting, SCREENSHOT: screenshot } = process.env;
const { FAILED_ID: failed, VERSIONED_ID: versioned } = process.env;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // Script errors, and anything the Content-Security-Policy refused, fail the test.
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("response", (r) => { if (r.status() >= 400 && !r.url().includes("/api/orchestrators/")) problems.push(`${r.status()} for ${r.url()}`); });
  page.setDefaultTimeout(15000);

  // The list: both instances, each id a link.
  await page.goto(base);
  const list = page.getByRole("table", { name: "Instances" });
  await list.getByRole("link", { name: sequence }).waitFor();
  await list.getByRole("link", { name: waiting }).waitFor();
  // The retention policy is shown (this host runs without one).
  const retention = page.getByLabel("Retention");
  await retention.waitFor();
  assert.match(await retention.textContent(), /^Retention: off \(set AZFN_DURABLE_RETENTION/);

  // Each instance's version is listed (ConfirmOrder has two; HelloSequence none).
  const versionedRow = list.getByRole("row").filter({ has: page.getByRole("link", { name: versioned }) });
  assert.equal(await versionedRow.getByRole("cell").nth(1).textContent(), "2");

  // Filters: by status, then by name prefix.
  await page.getByLabel("Status").selectOption("Completed");
  await page.getByRole("button", { name: "Apply filters" }).click();
  // (The list is drawn again: the running instance goes, the completed one stays.)
  await list.getByRole("link", { name: waiting }).waitFor({ state: "detached" });
  await list.getByRole("link", { name: sequence }).waitFor();
  await page.getByLabel("Status").selectOption("");
  await page.getByLabel("Name starts with").fill("Approval");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await list.getByRole("link", { name: sequence }).waitFor({ state: "detached" });
  await list.getByRole("link", { name: waiting }).waitFor();
  // Paging: one per page.
  await page.getByLabel("Name starts with").fill("");
  await page.getByLabel("Per page").fill("1");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.getByText("Page 1").waitFor();
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("Page 2").waitFor();
  assert.equal(await list.getByRole("link").count(), 1, "one instance per page");

  // The instance view of the 5-activity sequence: its timeline has a bar per activity, labelled.
  await page.goto(`${base}#/instance/${encodeURIComponent(sequence)}`);
  const timeline = page.getByRole("img", { name: /Timeline of 5 steps/ });
  await timeline.waitFor();
  assert.equal(await timeline.locator('g[data-kind="activity"]').count(), 5);
  assert.equal(await timeline.getByText("SayHello", { exact: true }).count(), 5, "each bar labelled");
  const history = page.getByRole("table", { name: "History" });
  assert.ok((await history.getByRole("row").count()) > 10, "the history table has the events");
  await page.getByText("Completed", { exact: true }).first().waitFor();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  // Terminate through the UI (with its confirmation), answered by the API.
  await page.goto(`${base}#/instance/${encodeURIComponent(waiting)}`);
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Terminate" }).click();
  await page.getByRole("status").getByText(/Terminate: HTTP 202/).waitFor();

  // Rewind a failed instance, with its confirmation (only a Failed instance offers it).
  await page.goto(`${base}#/instance/${encodeURIComponent(failed)}`);
  await page.getByRole("heading", { name: new RegExp(failed) }).waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Rewind" }).click();
  await page.getByRole("status").getByText(/Rewind: HTTP 202/).waitFor();
  await page.goto(`${base}#/instance/${encodeURIComponent(sequence)}`);
  await page.getByRole("heading", { name: new RegExp(sequence) }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Rewind" }).count(), 0, "a Completed instance offers no rewind");

  // Versions and schedules: ConfirmOrder's versions, then a schedule made, paused and deleted.
  await page.goto(`${base}#/orchestrators`);
  const versions = page.getByRole("table", { name: "Versions" });
  const row = (v) => versions.getByRole("row").filter({ has: page.getByRole("cell", { name: "ConfirmOrder", exact: true }) })
    .filter({ has: page.getByRole("cell", { name: v, exact: true }) });
  await row("2").getByRole("cell", { name: "yes" }).first().waitFor();
  await row("1").getByText("can be removed: no instance left").waitFor();
  const schedules = page.getByRole("table", { name: "Schedules" });
  await schedules.getByText("No schedules.").waitFor();
  await page.getByLabel("Schedule id").fill("nightly");
  await page.getByLabel("Orchestrator").fill("HelloSequence");
  await page.getByLabel("Interval or cron").fill("0 0 2 * * *");
  await page.getByLabel("Input (JSON)").fill('["Oslo"]');
  await page.getByRole("button", { name: "Create schedule" }).click();
  await page.getByRole("status").getByText("Create schedule: HTTP 201").waitFor();
  await schedules.getByRole("cell", { name: "nightly" }).waitFor();
  await schedules.getByText("cron 0 0 2 * * *").waitFor();
  await schedules.getByRole("button", { name: "Pause" }).click();
  await schedules.getByRole("button", { name: "Resume" }).waitFor();
  await schedules.getByRole("cell", { name: "Paused" }).waitFor();
  page.once("dialog", (d) => d.accept());
  await schedules.getByRole("button", { name: "Delete" }).click();
  await schedules.getByText("No schedules.").waitFor();

  // Entities: filtered by name, one per page (the test signalled two Counters).
  await page.goto(`${base}#/entities`);
  const entities = page.getByRole("table", { name: "Entities" });
  await page.getByLabel("Entity name").fill("Counter");
  await page.getByLabel("Per page").fill("1");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.getByText("Page 1").waitFor();
  // "Page 1" is on screen before the filter applies too: wait for the filtered page's one row.
  await untilRows(entities, 1);
  const firstKey = await entities.locator("tbody td.mono").textContent();
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("Page 2").waitFor();
  assert.equal(await entities.locator("tbody tr").count(), 1, "one entity per page");
  const secondKey = await entities.locator("tbody td.mono").textContent();
  assert.notEqual(firstKey, secondKey, "the second page shows the other entity");
  assert.ok(["dash-a", "dash-b"].includes(firstKey) && ["dash-a", "dash-b"].includes(secondKey), `${firstKey}, ${secondKey}`);

  // Poison: the parked message is listed, and Redrive sends it back.
  await page.goto(`${base}#/poison`);
  const parked = page.getByRole("table", { name: "Parked messages" });
  await parked.getByText("azfn-control-poison").waitFor();
  await page.getByRole("button", { name: "Redrive" }).click();
  await page.getByRole("status").getByText(/Redrive: HTTP 200 \{"redriven":1\}/).waitFor();
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], "the page reported problems");
console.log("dashboard: list, versions, filters, paging, timeline, terminate, rewind, schedules, entities and redrive all passed");

/** Waits (up to 10 s) until `table` shows exactly `n` body rows. */
async function untilRows(table, n) {
  for (let i = 0; i < 200; i++) {
    if ((await table.locator("tbody tr").count()) === n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the table never showed ${n} row(s)`);
}
