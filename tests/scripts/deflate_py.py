#!/usr/bin/python3
"""permessage-deflate checks with Python `websockets` (Debian's python3-websockets), which offers
and uses compression by default. Run by tests/integration/test_fe_deflate.c against a running
frontend:

    deflate_py.py PORT ADMIN_PORT CHECK

Exits 0 when the check holds; otherwise prints why to stderr and exits 1. Where the client
library cannot send what a check needs (data that is not deflate), a raw socket does it."""

import asyncio
import base64
import json
import os
import socket
import struct
import sys
import urllib.request
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

PORT = int(sys.argv[1])
ADMIN = int(sys.argv[2])
CHECK = sys.argv[3]
URI = f"ws://127.0.0.1:{PORT}/"
TIMEOUT = 10


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def document(n_items=14, tag="doc"):
    """A realistic JSON document (an order with line items) of about 2 KB for 14 items."""
    titles = ["Coffee beans, 1 kg", "Espresso cups (set of 6)", "Milk frother", "Paper filters x100",
              "Burr grinder", "Descaler, 500 ml", "Travel mug 350 ml"]
    return {
        "type": tag,
        "order_id": "ord_48213",
        "customer": {"name": "Ana Silva", "email": "ana.silva@example.com", "city": "Lisbon",
                     "country": "PT", "loyalty": {"tier": "gold", "points": 1830}},
        "items": [{"sku": "SKU-%05d" % (1000 + i * 37), "title": titles[i % len(titles)],
                   "qty": i % 3 + 1, "unit_price": round(4.5 + i * 1.25, 2), "currency": "EUR",
                   "in_stock": i % 5 != 0} for i in range(n_items)],
        "shipping": {"method": "express", "address": "Rua Augusta 112, 1100-053 Lisboa"},
        "note": "Leave the parcel with the concierge if nobody answers.",
    }


def metric(name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=TIMEOUT).read()
    total = 0.0
    found = False
    for line in text.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    expect(found, f"metric {name} missing")
    return total


def watch(ws):
    """Records (opcode, rsv1) of every data frame ws receives, as it came off the wire: the
    permessage-deflate extension's decode sees each frame before it inflates it."""
    seen = []
    for ext in ws.extensions:
        orig = ext.decode

        def decode(frame, *, max_size=None, orig=orig):
            seen.append((frame.opcode, frame.rsv1))
            return orig(frame, max_size=max_size)

        ext.decode = decode
    return seen


async def join(ws, device, room):
    await ws.send(json.dumps({"device_id": device, "room_id": room}))
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if m.get("type") == "room":
            return m
        expect(m.get("type") == "connection", f"{device}: unexpected answer {m}")


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def pmd_header(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions")


async def connect(device, room, **kw):
    ws = await websockets.connect(URI, max_size=None, **kw)
    await join(ws, device, room)
    return ws


async def closed_with(ws, code):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed as e:
        expect(e.code == code, f"closed with {e.code} ({e.reason}), expected {code}")


# ---- checks ---------------------------------------------------------------------------------

async def check_negotiated():
    """The answer names both no_context_takeover parameters; the client runs the extension."""
    ws = await websockets.connect(URI)
    h = pmd_header(ws)
    expect(h is not None, "no Sec-WebSocket-Extensions in the 101")
    params = [p.strip() for p in h.split(";")]
    expect(params[0] == "permessage-deflate", f"extension {h}")
    expect("server_no_context_takeover" in params and "client_no_context_takeover" in params,
           f"answer {h} lacks a no_context_takeover parameter")
    expect([type(e).__name__ for e in ws.extensions] == ["PerMessageDeflate"],
           f"client extensions {ws.extensions}")
    await ws.close()


async def check_large_compressed_small_plain():
    """A large relayed message arrives compressed (RSV1) and intact at deflate clients, plain
    at a client without it; a small one arrives plain everywhere."""
    room = "pyz1"
    z1 = await connect("z1", room)
    z2 = await connect("z2", room)
    plain = await connect("p1", room, compression=None)
    expect(pmd_header(plain) is None, "a client without compression got the extension")
    sender = await connect("s1", room, compression=None)
    seen1, seen2 = watch(z1), watch(z2)
    doc = document()
    text = json.dumps(doc)
    expect(1800 <= len(text) <= 2600, f"document is {len(text)} bytes")
    before = metric("rrm_deflate_compressed_messages_total")
    sent_before = metric("rrm_deflate_frames_sent_total")
    await sender.send(text)
    for ws in (z1, z2, plain):
        m = await recv_json(ws)
        expect(m["items"] == doc["items"] and m["customer"] == doc["customer"],
               "large message changed on the way")
        expect(m["from_device_id"] == "s1", f"from {m.get('from_device_id')}")
    expect(seen1 == [(websockets.frames.Opcode.TEXT, True)], f"z1 saw frames {seen1}")
    expect(seen2 == [(websockets.frames.Opcode.TEXT, True)], f"z2 saw frames {seen2}")
    # compressed once on this node, shared by both deflate recipients
    expect(metric("rrm_deflate_compressed_messages_total") - before == 1,
           "the message was not compressed exactly once")
    expect(metric("rrm_deflate_frames_sent_total") - sent_before == 2,
           "not one compressed frame per deflate recipient")
    seen1.clear()
    await sender.send(json.dumps({"type": "text", "content": "hi"}))
    m = await recv_json(z1)
    expect(m["content"] == "hi", f"small message {m}")
    expect(seen1 == [(websockets.frames.Opcode.TEXT, False)], f"small message came as {seen1}")
    m = await recv_json(plain)
    expect(m["content"] == "hi", f"small message {m}")
    for ws in (z1, z2, plain, sender):
        await ws.close()


async def check_client_compressed_relayed():
    """A message the client compressed is inflated and relayed intact to a client without
    compression (and to a deflate client)."""
    room = "pyz2"
    z = await connect("cz", room)
    plain = await connect("cp", room, compression=None)
    z2 = await connect("cz2", room)
    inflated = metric("rrm_deflate_inflated_messages_total")
    doc = document(30)
    await z.send(json.dumps(doc))  # websockets compresses every message once negotiated
    m = await recv_json(plain)
    expect(m["items"] == doc["items"], "the compressed client message changed on the way")
    m = await recv_json(z2)
    expect(m["items"] == doc["items"], "the compressed client message changed on the way (2)")
    expect(metric("rrm_deflate_inflated_messages_total") - inflated == 1,
           "the node did not inflate the message")
    for ws in (z, plain, z2):
        await ws.close()


async def check_fragmented():
    """A compressed message in several frames (RSV1 on the first only) is relayed intact."""
    room = "pyz3"
    z = await connect("fz", room)
    plain = await connect("fp", room, compression=None)
    frames = []
    expect(z.extensions, "not negotiated")
    ext = z.extensions[0]
    orig = ext.encode

    def encode(frame, orig=orig):
        out = orig(frame)
        frames.append((out.opcode, out.rsv1, out.fin))
        return out

    ext.encode = encode
    text = json.dumps(document(20))
    parts = [text[i:i + 700] for i in range(0, len(text), 700)]
    await z.send(parts)
    # (websockets ends the message with an empty final frame)
    expect(len(frames) >= 3 and frames[0][1] and not any(f[1] for f in frames[1:]),
           f"the client did not send a fragmented compressed message: {frames}")
    m = await recv_json(plain)
    expect(json.dumps({k: m[k] for k in json.loads(text)}) == text,
           "the fragmented compressed message changed on the way")
    for ws in (z, plain):
        await ws.close()


async def check_zip_bomb():
    """A small compressed message that inflates beyond RRM_MAX_FRAME_BYTES closes 1009."""
    room = "pyz4"
    z = await connect("bz", room)
    errors = metric('rrm_deflate_inflate_errors_total{reason="too_big"}')
    bomb = '{"type":"text","content":"' + "a" * (8 * 1024 * 1024) + '"}'
    expect(len(zlib.compress(bomb.encode())) < 65536, "the bomb does not compress")
    await z.send(bomb)
    await closed_with(z, 1009)
    expect(metric('rrm_deflate_inflate_errors_total{reason="too_big"}') - errors == 1,
           "the bomb was not counted")


def raw_upgrade(offer):
    """A raw client: the upgrade with the given Sec-WebSocket-Extensions (None: none). Returns the
    socket and the response's headers (lower-case names)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if offer is not None:
        req += f"Sec-WebSocket-Extensions: {offer}\r\n"
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        expect(chunk, "connection closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    expect(lines[0].startswith("HTTP/1.1 101"), f"status {lines[0]}")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return s, headers, rest


def raw_send(s, first_byte, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first_byte, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first_byte, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first_byte, 0x80 | 127, n)
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def raw_frames(s, rest):
    """Yields (first byte, payload) of the server's frames."""
    buf = rest
    while True:
        while len(buf) < 2 or len(buf) < header_len(buf) + payload_len(buf):
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
        h, n = header_len(buf), payload_len(buf)
        yield buf[0], buf[h:h + n]
        buf = buf[h + n:]


def header_len(b):
    if len(b) < 2:
        return 2
    return {126: 4, 127: 10}.get(b[1] & 0x7F, 2)


def payload_len(b):
    if len(b) < header_len(b):
        return 0
    n = b[1] & 0x7F
    if n == 126:
        return struct.unpack("!H", b[2:4])[0]
    if n == 127:
        return struct.unpack("!Q", b[2:10])[0]
    return n


def raw_close_code(s, rest):
    for first, payload in raw_frames(s, rest):
        if first & 0x0F == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return 1006


def raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


async def check_garbage():
    """A message with RSV1 whose payload is not deflate data closes with 1007."""
    s, headers, rest = raw_upgrade("permessage-deflate")
    expect("permessage-deflate" in headers.get("sec-websocket-extensions", ""), "not negotiated")
    raw_send(s, 0xC1, raw_deflate(json.dumps({"device_id": "gz", "room_id": "pyz5"}).encode()))
    errors = metric('rrm_deflate_inflate_errors_total{reason="invalid"}')
    # 0xff: a final block of the reserved type 11
    raw_send(s, 0xC1, b"\xff\xfe\xfd\xfc" * 16)
    code = raw_close_code(s, rest)
    expect(code == 1007, f"garbage closed with {code}")
    expect(metric('rrm_deflate_inflate_errors_total{reason="invalid"}') - errors == 1,
           "the garbage was not counted")
    s.close()


async def check_invalid_utf8():
    """Text that is not UTF-8 closes with 1007 and is counted, whether it came compressed (checked
    once inflated) or plain."""
    for compressed in (True, False):
        s, headers, rest = raw_upgrade("permessage-deflate")
        expect("sec-websocket-extensions" in headers, "not negotiated")
        before = metric("rrm_invalid_utf8_total")
        raw_send(s, 0x81, json.dumps({"device_id": "uz", "room_id": "pyz9"}).encode())
        bad = b'{"type":"text","content":"caf\xe9 \xc0\xaf"}'
        if compressed:
            raw_send(s, 0xC1, raw_deflate(bad))
        else:
            raw_send(s, 0x81, bad)
        code = raw_close_code(s, rest)
        expect(code == 1007, f"invalid UTF-8 (compressed: {compressed}) closed with {code}")
        expect(metric("rrm_invalid_utf8_total") - before == 1, "invalid UTF-8 not counted")
        s.close()


async def check_browser_offer():
    """Chromium's offer is accepted; the raw client inflates what the node sends with a fresh
    inflater per message (no context takeover) and the node inflates ours the same way."""
    s, headers, rest = raw_upgrade("permessage-deflate; client_max_window_bits")
    h = headers.get("sec-websocket-extensions", "")
    expect(h == "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
           f"answer to Chromium's offer: {h!r}")
    raw_send(s, 0xC1, raw_deflate(json.dumps({"device_id": "bz", "room_id": "pyz6"}).encode()))
    other = await connect("bo", "pyz6", compression=None)
    got = []
    frames = raw_frames(s, rest)
    for first, payload in frames:  # the connection and room answers, small: plain
        expect(first == 0x81, f"small answer with first byte {first:#x}")
        if json.loads(payload).get("type") == "room":
            break
    doc = document()
    for _ in range(2):
        await other.send(json.dumps(doc))
        first, payload = next(frames)
        expect(first == 0xC1, f"large message with first byte {first:#x}")
        d = zlib.decompressobj(-15)
        got.append(json.loads(d.decompress(payload + b"\x00\x00\xff\xff")))
    expect(all(m["items"] == doc["items"] for m in got), "inflated messages differ")
    s.close()
    await other.close()


async def check_window_bits():
    """server_max_window_bits=10 is honoured (answered, and the frames inflate with a 1 KiB
    window); =8 declines the extension (zlib cannot make it), the connection is accepted."""
    room = "pyz7"
    small = await connect("w10", room, extensions=[ClientPerMessageDeflateFactory(
        server_max_window_bits=10, client_max_window_bits=True)])
    h = pmd_header(small)
    expect(h is not None and "server_max_window_bits=10" in h, f"answer {h}")
    seen = watch(small)
    big = await connect("w15", room)
    sender = await connect("ws", room, compression=None)
    # a token repeated 2 KB apart: compressed for a 32 KiB window, the copy refers back further
    # than a 1 KiB window reaches, and the client's inflater refuses it
    rid = os.urandom(400).hex()
    doc = {"request_id": rid, **document(14), "echo_request_id": rid}
    await sender.send(json.dumps(doc))
    for ws in (small, big):
        m = await recv_json(ws)
        expect(m["items"] == doc["items"], "message changed on the way")
    expect(seen == [(websockets.frames.Opcode.TEXT, True)], f"window 10 client saw {seen}")
    # zlib reads back references from its output buffer when it can: a raw client inflates in
    # 64-byte steps, so that only the 1 KiB window serves them
    s, headers, rest = raw_upgrade("permessage-deflate; server_max_window_bits=10")
    expect("server_max_window_bits=10" in headers.get("sec-websocket-extensions", ""),
           f"answer {headers}")
    raw_send(s, 0x81, json.dumps({"device_id": "wr", "room_id": room}).encode())
    frames = raw_frames(s, rest)
    for first, payload in frames:
        if first == 0x81 and json.loads(payload).get("type") == "room":
            break
    await sender.send(json.dumps(doc))
    first, payload = next(frames)
    expect(first == 0xC1, f"first byte {first:#x}")
    d, out, data = zlib.decompressobj(-10), b"", payload + b"\x00\x00\xff\xff"
    try:
        while data:
            out += d.decompress(data, 64)
            data = d.unconsumed_tail
    except zlib.error as e:
        raise Failed(f"not inflatable with the 1 KiB window asked for: {e}")
    expect(json.loads(out)["echo_request_id"] == rid, "window 10 message changed")
    s.close()
    s, headers, rest = raw_upgrade("permessage-deflate; server_max_window_bits=8")
    expect("sec-websocket-extensions" not in headers, f"=8 accepted: {headers}")
    s.close()
    s, headers, rest = raw_upgrade("permessage-deflate; unknown_param")
    expect("sec-websocket-extensions" not in headers, f"unknown parameter accepted: {headers}")
    s.close()
    for ws in (small, big, sender):
        await ws.close()


async def check_declined():
    """RRM_DEFLATE=0: the offer is declined; everything arrives plain."""
    z = await connect("dz", "pyz8")
    expect(pmd_header(z) is None, f"extension negotiated: {pmd_header(z)}")
    expect(z.extensions == [], f"client extensions {z.extensions}")
    sender = await connect("ds", "pyz8", compression=None)
    doc = document()
    await sender.send(json.dumps(doc))
    m = await recv_json(z)
    expect(m["items"] == doc["items"], "message changed on the way")
    for ws in (z, sender):
        await ws.close()


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}

if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(CHECKS[CHECK](), 60))
    except Failed as e:
        print(f"deflate_py.py {CHECK}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"deflate_py.py {CHECK}: ok")
