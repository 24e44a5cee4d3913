// What the browser tests share: Debian's Chromium driven by playwright-core, headless, with a
// deadline for the whole run, and a failure that says why (exit status 1).
import { chromium } from "playwright-core";

// One wait for something to show, in ms (generous for sanitizer builds of the nodes).
export const WAIT = 10000;

// Runs body(browser) in a fresh headless Chromium and exits 0 if it resolves, 1 with the reason
// if it throws or the whole run takes longer than deadlineMs.
export async function run(name, body, deadlineMs = 90000) {
  const timer = setTimeout(() => {
    console.error(`${name}: FAILED: the run took longer than ${deadlineMs} ms`);
    process.exit(1);
  }, deadlineMs);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.RRM_CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // root in containers and CI: Chromium's sandbox needs user namespaces it may not have
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    await body(browser);
    console.log(`${name}: ok`);
    await browser.close();
    clearTimeout(timer);
    process.exit(0);
  } catch (e) {
    console.error(`${name}: FAILED: ${e && e.stack ? e.stack : e}`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}

export function check(cond, what) {
  if (!cond) throw new Error(what);
}

// Waits until fn(arg), run in the page, returns a truthy value, and returns it; throws what if it
// does not within timeout ms. It polls with page.evaluate (the DevTools protocol), not with
// waitForFunction, whose polling evaluates strings in the page: the pages' Content-Security-Policy
// forbids that, as it should.
export async function until(page, what, fn, arg, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await page.evaluate(fn, arg);
      if (v) return v;
    } catch (e) {
      last = e.message.split("\n")[0]; // a navigation in between: ask again
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeout} ms${last ? ` (${last})` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
