"""
A confluent-kafka-python (librdkafka) producer for Brook's failover tests
(test/cluster/replication.test.ts): writes unique values to one topic for a while
and reports every delivery the broker acknowledged.

Reads one JSON object on stdin: {bootstrap, topic, acks, duration_s, rate}. Produces
"<prefix><n>" values at about `rate` per second for `duration_s`, then flushes, and
prints one JSON object: {"acked": [[value, partition, offset, acked_ms, sent_ms]...],
"errors": N, "first_error": text, "sent": N}, with the wall-clock times at which each
acknowledged value was handed to the client and acknowledged. It checks
nothing itself: the test asserts on what it prints.
"""
import json
import sys
import time

from confluent_kafka import Producer


def main():
    cmd = json.load(sys.stdin)
    acked = []
    sent_ms = {}
    errors = {"count": 0, "first": None}

    def delivered(err, msg):
        if err is not None:
            errors["count"] += 1
            if errors["first"] is None:
                errors["first"] = str(err)
            return
        value = msg.value().decode("utf-8")
        acked.append([value, msg.partition(), msg.offset(), int(time.time() * 1000), sent_ms[value]])

    producer = Producer({
        "bootstrap.servers": cmd["bootstrap"],
        "acks": str(cmd["acks"]),
        "enable.idempotence": False,
        "linger.ms": 2,
        "retries": 1000000,
        "retry.backoff.ms": 50,
        "message.timeout.ms": 30000,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    prefix = cmd.get("prefix", "py-")
    interval = 1.0 / cmd["rate"]
    deadline = time.time() + cmd["duration_s"]
    n = 0
    while time.time() < deadline:
        value = f"{prefix}{n}"
        sent_ms[value] = int(time.time() * 1000)
        producer.produce(cmd["topic"], value=value.encode("utf-8"), callback=delivered)
        n += 1
        producer.poll(0)
        time.sleep(interval)
    producer.flush(40)
    print(json.dumps({"acked": acked, "errors": errors["count"], "first_error": errors["first"], "sent": n}))


if __name__ == "__main__":
    main()
