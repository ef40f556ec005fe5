"""Constant-rate event sender for the latency and isolation rows of `make bench` (stdlib, asyncio).

    python3 latency_sender.py URL TOKEN RATE SECONDS ID_PREFIX EVENT_TYPE ORG OUT.json

POSTs one event per 1/RATE s to URL (producer-api /api/v1/events) for SECONDS, over up to 64 keep-alive
connections, each event with its own client id ID_PREFIX-<n> (so the receiver's webhook-id names it). Writes
{"sent": {id: unix_seconds_at_write}, "status": {code: count}, "max_lag_ms": ..., "rate": achieved} to OUT.json.
Bounded: stops scheduling after SECONDS and waits at most 10 s for the last answers.
"""

import asyncio
import json
import sys
import time
from collections import Counter


async def main() -> None:
    url, token, rate, seconds, prefix, etype, org, out = sys.argv[1:9]
    rate, seconds, org = float(rate), float(seconds), int(org)
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    host, port = host_port.rsplit(":", 1)
    sent = {}
    status = Counter()
    lag = [0.0]
    queue: asyncio.Queue = asyncio.Queue()
    total = int(rate * seconds)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while True:
            item = await queue.get()
            if item is None:
                break
            seq, due = item
            eid = f"{prefix}-{seq}"
            body = json.dumps({"type": etype, "organization_id": org, "id": eid,
                               "data": {"id": seq, "name": "latency probe"}}).encode()
            head = (f"POST {path} HTTP/1.1\r\nHost: {host_port}\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            now = time.time()
            lag[0] = max(lag[0], (time.monotonic() - due) * 1000)
            sent[eid] = now
            writer.write(head + body)
            await writer.drain()
            line = await reader.readline()
            code = int(line.split()[1]) if len(line.split()) > 1 else 0
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                await reader.readexactly(length)
            status[code] += 1
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(64)]
    t0 = time.monotonic()
    for seq in range(total):
        due = t0 + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((seq, due))
    elapsed = time.monotonic() - t0
    for _ in workers:
        queue.put_nowait(None)
    try:
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), timeout=10)
    except asyncio.TimeoutError:
        pass
    with open(out, "w") as f:
        json.dump({"sent": sent, "status": dict(status), "max_lag_ms": lag[0],
                   "rate": total / elapsed if elapsed > 0 else 0}, f)


if __name__ == "__main__":
    asyncio.run(main())
