// A browser app on another origin calling the local API (tests/dashboard.rs's
// a_browser_app_on_an_allowed_origin_calls_the_api sets it up): Chromium loads a page from
// ALLOWED_ORIGIN and from OTHER_ORIGIN (served here by node), and each calls API_BASE with fetch.
// From the allowed origin, a simple GET and a POST with JSON (which needs a preflight) succeed; from
// the other, the browser refuses both. Exits non-zero with the reason on any failure.
import assert from "node:assert/strict";
import http from "node:http";

const { chromium } = await import(process.env.PLAYWRIGHT_CORE);
const api = process.env.API_BASE;
const origins = [process.env.ALLOWED_ORIGIN, process.env.OTHER_ORIGIN];

// One tiny page server per origin (the port is in the origin).
const servers = origins.map((o) => {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>app</title><p>app</p>");
  });
  server.listen(Number(new URL(o).port), "127.0.0.1");
  return server;
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const results = [];
  for (const origin of origins) {
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    results.push(await page.evaluate(async (base) => {
      const hello = await fetch(`${base}/api/hello?name=browser`).then((r) => r.text()).catch((e) => `refused: ${e}`);
      const order = await fetch(`${base}/api/orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ customerId: "c-1", items: [{ sku: "s-1", quantity: 1, unitPrice: 2.5 }], currency: "EUR" }),
      }).then((r) => r.status).catch((e) => `refused: ${e}`);
      return { hello, order };
    }, api));
    await page.close();
  }
  const [allowed, other] = results;
  assert.equal(allowed.hello, "Hello, browser", JSON.stringify(allowed));
  assert.equal(allowed.order, 202, JSON.stringify(allowed));
  assert.match(String(other.hello), /^refused/, JSON.stringify(other));
  assert.match(String(other.order), /^refused/, JSON.stringify(other));
  console.log(JSON.stringify({ allowed, other }));
} finally {
  await browser.close();
  for (const s of servers) s.close();
}
