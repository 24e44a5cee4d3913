// The operator's /status page in Chromium (run by tests/integration/test_fe_pages.c, which has
// put members into rooms first). Args: the admin URL of node-a, the public URL of node-b.
//   pages-room: status-a1 (identity "Anna") on node-a, status-b1 on node-b whose identity is HTML
//   fill-01..fill-12: filler-01..filler-12, one member each, on node-a
import { run, check, until, WAIT } from "./lib.mjs";

const [admin, publicB] = process.argv.slice(2);
const EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

run("status page", async (browser) => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.setDefaultTimeout(WAIT);
  const res = await page.goto(admin + "status");
  check(res.ok(), `GET /status: ${res.status()}`);
  await page.evaluate(() => {
    window.__loaded = 1; // gone if the page reloads
    window.__rows = () =>
      [...document.querySelectorAll("#rooms tbody tr")].map((r) => [...r.cells].map((c) => c.textContent));
  });

  // the busiest room first, with its count, both nodes and the identities
  await until(page, "pages-room first, 2 members, on node-a and node-b", () => {
    const r = window.__rows()[0];
    return r && r[0] === "pages-room" && r[1] === "2" && r[2].includes("node-a") && r[2].includes("node-b");
  });
  const first = (await page.evaluate(() => window.__rows()))[0];
  check(first[3].includes("status-a1: Anna @ node-a"), `members of pages-room: ${first[3]}`);
  check(first[3].includes(`status-b1: ${EVIL} @ node-b`), `the HTML identity shown as text: ${first[3]}`);
  check(await page.evaluate(() => window.__pwned === undefined && !document.querySelector("#rooms img, #rooms script")),
    "an identity's HTML was run or inserted");

  // every node, with its connections and version
  const nodes = await until(page, "node-a and node-b with their versions", () => {
    const n = [...document.querySelectorAll("#nodes tbody tr")].map((r) => [...r.cells].map((c) => c.textContent));
    return n.length === 2 && n.every((r) => r[3] && r[3] !== "unknown") ? n : false;
  });
  check(nodes.map((r) => r[0]).sort().join() === "node-a,node-b", `nodes: ${JSON.stringify(nodes)}`);
  const a = nodes.find((r) => r[0] === "node-a");
  check(a[1] === "13", `node-a's connections: ${a[1]} (want 13)`);

  // paging: 13 rooms, 10 a page
  await page.selectOption("#per", "10");
  await until(page, "page 1 of 2 with 10 rooms", () =>
    window.__rows().length === 10 && document.getElementById("pageinfo").textContent.startsWith("page 1 of 2 (13 rooms)"));
  await page.click("#next");
  const page2 = await until(page, "page 2 of 2 with the other 3 rooms", () =>
    document.getElementById("pageinfo").textContent.startsWith("page 2 of 2") && window.__rows().length === 3 && window.__rows());
  check(page2.every((r) => r[0].startsWith("fill-") && r[1] === "1"), `page 2: ${JSON.stringify(page2)}`);
  check(page.url().includes("page=2") && page.url().includes("per_page=10"), `the address keeps the page: ${page.url()}`);

  // search: part of a room id, a device id, nothing
  await page.fill("#q", "ES-RO");
  await until(page, "the search finds pages-room by part of its id", () => {
    const r = window.__rows();
    return r.length === 1 && r[0][0] === "pages-room";
  });
  await page.fill("#q", "filler-07");
  await until(page, "the search finds a device's room", () => {
    const r = window.__rows();
    return r.length === 1 && r[0][0] === "fill-07" &&
      document.getElementById("device").textContent.includes("connected to node-a in room fill-07");
  });
  await page.fill("#q", "no-such-room");
  await until(page, "a search without match lists nothing", () =>
    window.__rows().length === 0 && document.getElementById("pageinfo").textContent.includes("0 matching"));

  // the page refreshes itself: a member joining on node-b appears without a reload
  await page.fill("#q", "pages-room");
  await until(page, "pages-room alone", () => window.__rows().length === 1);
  const other = await browser.newPage();
  other.setDefaultTimeout(WAIT);
  await other.goto(publicB);
  await other.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/`);
    window.__ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ device_id: "late-joiner", identity: "Late", room_id: "pages-room" }));
    ws.onmessage = (e) => { if (JSON.parse(e.data).type === "room") resolve(); };
    ws.onerror = () => reject(new Error("the WebSocket to node-b failed"));
  }));
  await until(page, "the new member on the page without a reload", () => {
    const r = window.__rows()[0];
    return r && r[1] === "3" && r[3].includes("late-joiner: Late @ node-b");
  });
  check(await page.evaluate(() => window.__loaded === 1), "the page was reloaded");
  check(errors.length === 0, `errors in the page: ${errors.join("; ")}`);
});
