// permessage-deflate checks with Node's `ws` (tests/package.json), which offers compression
// by default. Run by tests/integration/test_fe_deflate.c against a running frontend:
//
//     node deflate_ws.js PORT CHECK
//
// Exits 0 when the check holds; otherwise prints why to stderr and exits 1.
'use strict';

const WebSocket = require('ws');

const [port, check] = process.argv.slice(2);
const url = `ws://127.0.0.1:${port}/`;
const TIMEOUT = 10000;

function fail(why) {
  console.error(`deflate_ws.js ${check}: ${why}`);
  process.exit(1);
}

function expect(cond, what) {
  if (!cond) fail(what);
}

// A realistic JSON document (an order with line items), about 2 KB for 16 items.
function documentOf(n) {
  const titles = ['Coffee beans, 1 kg', 'Espresso cups (set of 6)', 'Milk frother',
    'Paper filters x100', 'Burr grinder', 'Descaler, 500 ml', 'Travel mug 350 ml'];
  const items = [];
  for (let i = 0; i < n; i++) {
    items.push({sku: `SKU-${String(1000 + i * 37).padStart(5, '0')}`, title: titles[i % titles.length],
      qty: i % 3 + 1, unit_price: Math.round((4.5 + i * 1.25) * 100) / 100, currency: 'EUR',
      in_stock: i % 5 !== 0});
  }
  return {type: 'doc', order_id: 'ord_48213',
    customer: {name: 'Ana Silva', email: 'ana.silva@example.com', city: 'Lisbon'},
    items, note: 'Leave the parcel with the concierge if nobody answers.'};
}

// A client with a queue of received messages; compressed counts the messages that came
// compressed (ws's permessage-deflate decompresses only frames with RSV1).
function client(opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    const c = {ws, queue: [], waiters: [], compressed: 0, closed: null};
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      const w = c.waiters.shift();
      if (w) w(m); else c.queue.push(m);
    });
    ws.on('close', (code) => { c.closed = code; });
    ws.on('error', reject);
    ws.on('open', () => {
      const pmd = ws._extensions['permessage-deflate'];
      if (pmd) {
        const orig = pmd.decompress.bind(pmd);
        pmd.decompress = (data, fin, cb) => { if (fin) c.compressed++; orig(data, fin, cb); };
      }
      resolve(c);
    });
  });
}

function next(c) {
  if (c.queue.length) return Promise.resolve(c.queue.shift());
  return new Promise((resolve) => {
    const t = setTimeout(() => fail('no message in time'), TIMEOUT);
    c.waiters.push((m) => { clearTimeout(t); resolve(m); });
  });
}

async function join(c, device, room) {
  c.ws.send(JSON.stringify({device_id: device, room_id: room}));
  for (;;) {
    const m = await next(c);
    if (m.type === 'room') return m;
  }
}

async function connect(device, room, opts) {
  const c = await client(opts);
  await join(c, device, room);
  return c;
}

const checks = {
  // The answer names both no_context_takeover parameters (ws keeps what it accepted).
  async negotiated() {
    const c = await client({});
    expect(c.ws.extensions === 'permessage-deflate', `negotiated ${c.ws.extensions}`);
    const p = c.ws._extensions['permessage-deflate'].params;
    expect(p.server_no_context_takeover === true && p.client_no_context_takeover === true,
      `parameters ${JSON.stringify(p)}`);
    c.ws.close();
  },

  // Large messages arrive compressed and intact, small ones plain; what ws compresses (also
  // fragmented) reaches a client without compression intact.
  async relay() {
    const room = 'jsz1';
    const z = await connect('jz', room, {perMessageDeflate: {threshold: 0}});
    const plain = await connect('jp', room, {perMessageDeflate: false});
    expect(plain.ws.extensions === '', `plain client negotiated ${plain.ws.extensions}`);
    const doc = documentOf(16);
    const text = JSON.stringify(doc);
    expect(text.length >= 1800 && text.length <= 2600, `document is ${text.length} bytes`);
    z.compressed = 0;
    plain.ws.send(text);
    let m = await next(z);
    expect(JSON.stringify(m.items) === JSON.stringify(doc.items), 'large message changed');
    expect(z.compressed === 1, `large message: ${z.compressed} compressed`);
    plain.ws.send(JSON.stringify({type: 'text', content: 'hi'}));
    m = await next(z);
    expect(m.content === 'hi' && z.compressed === 1, 'small message came compressed');
    // ws compresses this one (threshold 0): the node inflates it for the plain client
    z.ws.send(text, {compress: true});
    m = await next(plain);
    expect(JSON.stringify(m.items) === JSON.stringify(doc.items), 'compressed message changed');
    // a fragmented compressed message: ws continues one deflate stream over the frames
    const parts = [text.slice(0, 600), text.slice(600, 1300), text.slice(1300)];
    parts.forEach((p, i) => z.ws.send(p, {compress: true, fin: i === parts.length - 1}));
    m = await next(plain);
    expect(JSON.stringify(m.items) === JSON.stringify(doc.items), 'fragmented message changed');
    z.ws.close();
    plain.ws.close();
  },

  // RRM_DEFLATE=0: the offer is declined.
  async declined() {
    const c = await client({});
    expect(c.ws.extensions === '', `negotiated ${c.ws.extensions}`);
    c.ws.close();
  },
};

const fn = checks[check];
if (!fn) fail('no such check');
const guard = setTimeout(() => fail('timed out'), 60000);
fn().then(() => {
  clearTimeout(guard);
  console.log(`deflate_ws.js ${check}: ok`);
  process.exit(0);
}, (e) => fail(e && e.stack || String(e)));
