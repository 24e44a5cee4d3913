// The browser client at / (public port) in Chromium, on two nodes (run by
// tests/integration/test_fe_pages.c). Args: the public URLs of node-a and node-b, then what to
// check: "messages" (text both ways; page A reaches node-a through a TCP proxy of this script,
// which cuts its connection as a network would: it must reconnect and resume without missing a
// message) or "presence" (each page sees the other's join, and its leave when it closes).
import net from "node:net";
import { run, check, until, WAIT } from "./lib.mjs";

const [publicA, publicB, part] = process.argv.slice(2);

// A TCP proxy to node-a: every connection piped through; drop() cuts them all; while paused,
// new connections are cut at once (the node is "unreachable").
function proxy(target) {
  const t = new URL(target);
  const conns = new Set();
  let paused = false;
  const server = net.createServer((c) => {
    if (paused) { c.destroy(); return; }
    const u = net.connect(Number(t.port), t.hostname);
    conns.add(c); conns.add(u);
    const end = () => { c.destroy(); u.destroy(); conns.delete(c); conns.delete(u); };
    c.on("error", end); u.on("error", end); c.on("close", end); u.on("close", end);
    c.pipe(u); u.pipe(c);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}/`,
    drop() { for (const s of conns) s.destroy(); conns.clear(); },
    pause(on) { paused = on; },
    close() { server.close(); },
  })));
}

async function connect(page, device, identity, room) {
  await page.fill("#device", device);
  await page.fill("#identity", identity);
  await page.fill("#room", room);
  await page.click("#connect");
  await until(page, `${device} in room ${room}`, (room) =>
    document.getElementById("status").textContent.startsWith(`in room ${room} `), room);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
  // acknowledged: the line is no longer pending
  await until(page, `"${text}" acknowledged`, (text) =>
    [...document.querySelectorAll("#log div.me")].some((d) => d.textContent === `me: ${text}` && !d.classList.contains("pending")), text);
}

// The messages from device that hold text, in the page's log.
function heard(page, from, text) {
  return page.evaluate(([from, text]) =>
    [...document.querySelectorAll("#log div.msg")].filter((d) => d.dataset.from === from && d.textContent.endsWith(text)).length,
  [from, text]);
}

async function expectHeard(page, who, from, text) {
  await until(page, `${who} receives "${text}" from ${from}`, ([from, text]) =>
    [...document.querySelectorAll("#log div.msg")].some((d) => d.dataset.from === from && d.textContent.endsWith(`: ${text}`)),
  [from, text]);
}

run(`browser client (${part})`, async (browser) => {
  const px = await proxy(publicA);
  const errors = [];
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  for (const p of [a, b]) {
    p.on("pageerror", (e) => errors.push(e.message));
    p.setDefaultTimeout(WAIT);
  }
  for (const [p, url] of [[a, px.url], [b, publicB]]) {
    const res = await p.goto(url);
    check(res.ok(), `GET ${url}: ${res.status()}`);
  }

  await connect(a, "alice", "Alice", "chat-1");
  await connect(b, "bob", "Bob", "chat-1");
  // bob sees alice in the room (query_room's room_info)
  await until(b, "bob's member list shows alice", () =>
    !!document.querySelector('#members li[data-device="alice"]'));

  if (part === "presence") {
    // alice saw bob join, then sees him leave when his page closes; bob saw alice in the room
    await until(a, "alice sees bob join (presence)", () =>
      !!document.querySelector('#log div.presence[data-presence="join"][data-device="bob"]') &&
      !!document.querySelector('#members li[data-device="bob"]'));
    await b.close();
    await until(a, "alice sees bob leave (presence)", () =>
      !!document.querySelector('#log div.presence[data-presence="leave"][data-device="bob"]') &&
      !document.querySelector('#members li[data-device="bob"]'));
    check(errors.length === 0, `errors in the pages: ${errors.join("; ")}`);
    px.close();
    return;
  }
  check(part === "messages", `unknown part ${part}`);

  // text both ways, across the two nodes
  await say(a, "hello from alice");
  await expectHeard(b, "bob", "alice", "hello from alice");
  await say(b, "hello from bob");
  await expectHeard(a, "alice", "bob", "hello from bob");

  // alice's connection drops; while she is away bob says something; she reconnects by herself
  // and resumes (last_seq, epoch): the message arrives, once
  px.pause(true);
  px.drop();
  await until(a, "alice notices the drop", () =>
    document.getElementById("status").textContent.includes("reconnecting"));
  await say(b, "while you were away");
  px.pause(false);
  await until(a, "alice back in chat-1", () =>
    document.getElementById("status").textContent.startsWith("in room chat-1 "), null, 30000);
  await expectHeard(a, "alice", "bob", "while you were away");
  check(await a.evaluate(() => [...document.querySelectorAll("#log div.system")].some((d) =>
    d.textContent.includes("(resumed, nothing missed)"))), "alice's rejoin did not resume");
  check(await heard(a, "bob", "while you were away") === 1, "the missed message came more than once");
  check(await heard(a, "bob", "hello from bob") === 1, "the resume sent an old message again");
  await say(a, "back again");
  await expectHeard(b, "bob", "alice", "back again");

  check(errors.length === 0, `errors in the pages: ${errors.join("; ")}`);
  px.close();
});
