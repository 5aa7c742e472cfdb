"""
confluent-kafka-python driver for Brook's real-client tests (test/clients/python.test.ts).

Reads one JSON command on stdin, does it with the real client, and prints one JSON
result on stdout. It checks nothing itself: the bun test asserts on what it prints.
Run with /usr/bin/python3 (the interpreter that has confluent_kafka installed).

Commands ("op"):
  create_topics     {bootstrap, topics: [{name, partitions, configs?}]}
  describe_configs  {bootstrap, topic}
  produce           {bootstrap, topic, codec, linger_ms, debug?, config?,
                     messages: [[key, value, [[hk, hv]...], timestamp?, partition?]...]}
  consume           {bootstrap, topic, assignments: [[partition, offset]...], timeout_s}
  watermarks        {bootstrap, topic, partitions}
  offsets_for_times {bootstrap, topic, lookups: [[partition, timestamp]...]}
"""
import json
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "append"}


def text(data):
    return None if data is None else data.decode("utf-8")


def create_topics(cmd):
    admin = AdminClient({"bootstrap.servers": cmd["bootstrap"]})
    new = [
        NewTopic(t["name"], num_partitions=t["partitions"], replication_factor=1,
                 config=t.get("configs", {}))
        for t in cmd["topics"]
    ]
    created = {}
    for name, future in admin.create_topics(new, operation_timeout=10, request_timeout=15).items():
        try:
            future.result(timeout=20)
            created[name] = None
        except Exception as error:  # the test asserts on the message
            created[name] = str(error)
    metadata = admin.list_topics(timeout=10)
    topics = {
        name: {
            "error": None if t.error is None else str(t.error),
            "partitions": {str(p.id): {"leader": p.leader, "replicas": p.replicas, "isrs": p.isrs}
                           for p in t.partitions.values()},
        }
        for name, t in metadata.topics.items()
    }
    brokers = {str(b.id): f"{b.host}:{b.port}" for b in metadata.brokers.values()}
    return {"created": created, "topics": topics, "brokers": brokers,
            "controller": metadata.controller_id}


def describe_configs(cmd):
    admin = AdminClient({"bootstrap.servers": cmd["bootstrap"]})
    resource = ConfigResource(ConfigResource.Type.TOPIC, cmd["topic"])
    futures = admin.describe_configs([resource], request_timeout=15)
    entries = futures[resource].result(timeout=20)
    return {
        "configs": {
            name: {"value": e.value, "is_default": e.is_default, "is_read_only": e.is_read_only,
                   "source": e.source}
            for name, e in entries.items()
        }
    }


def produce(cmd):
    config = {
        "bootstrap.servers": cmd["bootstrap"],
        "compression.type": cmd["codec"],
        "linger.ms": cmd["linger_ms"],
        "acks": "all",
        "enable.idempotence": False,
    }
    if cmd.get("debug"):
        config["debug"] = cmd["debug"]  # librdkafka logs to stderr
    config.update(cmd.get("config", {}))  # e.g. retries: 0, to see a broker's first error
    producer = Producer(config)
    delivered = [None] * len(cmd["messages"])
    errors = []

    def on_delivery(n):
        def report(err, msg):
            if err is not None:
                errors.append(f"message {n}: {err}")
                return
            ts_type, ts = msg.timestamp()
            delivered[n] = [msg.partition(), msg.offset(),
                            TIMESTAMP_TYPES.get(ts_type, str(ts_type)), ts]
        return report

    for n, (key, value, headers, *placement) in enumerate(cmd["messages"]):
        # Optional CreateTime and partition; otherwise the client's clock and partitioner.
        extra = dict(zip(["timestamp", "partition"], placement))
        while True:
            try:
                producer.produce(cmd["topic"], key=key, value=value,
                                 headers=[tuple(h) for h in headers],
                                 on_delivery=on_delivery(n), **extra)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(30)
    return {
        "undelivered": remaining,
        "errors": errors[:20],
        "delivered": delivered,
    }


def consumer_for(bootstrap):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "brook-python-client-test",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
    })


def consume(cmd):
    consumer = consumer_for(cmd["bootstrap"])
    topic = cmd["topic"]
    consumer.assign([
        TopicPartition(topic, p, OFFSET_BEGINNING if offset == "beginning" else offset)
        for p, offset in cmd["assignments"]
    ])
    waiting = {p for p, _ in cmd["assignments"]}
    records = []
    errors = []
    deadline = time.monotonic() + cmd["timeout_s"]
    while waiting and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.1):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    waiting.discard(msg.partition())
                else:
                    errors.append(str(err))
                continue
            ts_type, ts = msg.timestamp()
            records.append([
                msg.partition(), msg.offset(), TIMESTAMP_TYPES.get(ts_type, str(ts_type)), ts,
                text(msg.key()), text(msg.value()),
                [[k, text(v)] for k, v in (msg.headers() or [])],
            ])
    consumer.close()
    return {"records": records, "reached_end": not waiting, "errors": errors[:20]}


def watermarks(cmd):
    consumer = consumer_for(cmd["bootstrap"])
    marks = {
        str(p): list(consumer.get_watermark_offsets(TopicPartition(cmd["topic"], p), timeout=10))
        for p in range(cmd["partitions"])
    }
    consumer.close()
    return {"watermarks": marks}


def offsets_for_times(cmd):
    consumer = consumer_for(cmd["bootstrap"])
    found = consumer.offsets_for_times(
        [TopicPartition(cmd["topic"], p, ts) for p, ts in cmd["lookups"]], timeout=10)
    consumer.close()
    return {"offsets": [[tp.partition, tp.offset, None if tp.error is None else str(tp.error)]
                        for tp in found]}


OPS = {
    "create_topics": create_topics,
    "describe_configs": describe_configs,
    "produce": produce,
    "consume": consume,
    "watermarks": watermarks,
    "offsets_for_times": offsets_for_times,
}


def main():
    cmd = json.load(sys.stdin)
    json.dump(OPS[cmd["op"]](cmd), sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()
