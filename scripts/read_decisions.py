"""Read a topic with confluent-kafka (an independent client) and print one JSON summary line.

usage: read_decisions.py BOOTSTRAP TOPIC EXPECTED [TIMEOUT_SEC]

Reads from the beginning until EXPECTED messages or TIMEOUT_SEC; every message must be a JSON
object. Prints {"messages": n, "json": n, "three_votes": n, "services": [...]}.
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer

bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": f"python-reader-{uuid.uuid4()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
c.subscribe([topic])
seen = {"messages": 0, "json": 0, "three_votes": 0, "services": set()}
deadline = time.time() + timeout
while seen["messages"] < expected and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    seen["messages"] += 1
    try:
        d = json.loads(m.value())
    except ValueError:
        continue
    seen["json"] += 1
    if isinstance(d, dict) and len(d.get("votes", [])) == 3 and d.get("total_votes") == 3:
        seen["three_votes"] += 1
    seen["services"].add(d.get("service"))
c.close()
seen["services"] = sorted(s for s in seen["services"] if s)
print(json.dumps(seen))
