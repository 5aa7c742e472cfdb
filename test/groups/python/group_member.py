"""
One confluent-kafka-python (librdkafka) consumer group member for Brook's group tests
(test/groups/*.test.ts). It checks nothing itself: it reports what happens and the bun
test asserts on it. Run with /usr/bin/python3 (the interpreter with confluent_kafka).

argv[1] is a JSON object: {bootstrap, group, topics: [...], config: {librdkafka props}}.

It subscribes, then polls. Each message is "processed" (reported) and then committed
synchronously (commit after processing); the commit's outcome is reported too.

Events, one JSON object per stdout line:
  {"event": "subscribed"}
  {"event": "assign", "partitions": [[topic, partition]...]}   on_assign (eager: the whole
                                                     assignment; cooperative: what is added)
  {"event": "revoke", "partitions": [...]}           on_revoke (eager: everything;
                                                     cooperative: only what moves away)
  {"event": "lost", "partitions": [...]}             on_lost
  {"event": "message", "topic", "partition", "offset", "key"}
  {"event": "committed", "topic", "partition", "offset"} (offset = next to read)
  {"event": "commit_error", "topic", "partition", "offset", "error"}
  {"event": "error", "code", "name", "str", "fatal"}  error_cb and message errors
  {"event": "closed"}

Commands, one JSON object per stdin line:
  {"op": "close"}  consumer.close() (a dynamic member leaves the group; a static member
                   does not, KIP-345), report "closed", exit 0.
"""
import json
import os
import queue
import sys
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def pairs(partitions):
    return [[p.topic, p.partition] for p in partitions]


def error_fields(error):
    return {"code": error.code(), "name": error.name(), "str": error.str(),
            "fatal": error.fatal()}


def read_commands(commands):
    for line in sys.stdin:
        line = line.strip()
        if line:
            commands.put(json.loads(line))
    # The test went away: leave like a closing member would.
    commands.put({"op": "close"})


def main():
    spec = json.loads(sys.argv[1])
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "error_cb": lambda error: emit("error", **error_fields(error)),
    }
    config.update(spec.get("config", {}))
    consumer = Consumer(config)

    def on_assign(c, partitions):
        emit("assign", partitions=pairs(partitions))

    def on_revoke(c, partitions):
        emit("revoke", partitions=pairs(partitions))

    def on_lost(c, partitions):
        emit("lost", partitions=pairs(partitions))

    consumer.subscribe(spec["topics"], on_assign=on_assign, on_revoke=on_revoke,
                       on_lost=on_lost)
    emit("subscribed")

    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = None
        if command is not None and command["op"] == "close":
            consumer.close()
            emit("closed")
            return
        message = consumer.poll(0.05)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() != KafkaError._PARTITION_EOF:
                emit("error", **error_fields(message.error()))
            continue
        key = None if message.key() is None else message.key().decode("utf-8")
        where = {"topic": message.topic(), "partition": message.partition()}
        emit("message", offset=message.offset(), key=key, **where)
        try:
            consumer.commit(message=message, asynchronous=False)
            emit("committed", offset=message.offset() + 1, **where)
        except KafkaException as exception:
            error = exception.args[0]
            emit("commit_error", offset=message.offset() + 1, error=error_fields(error), **where)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: librdkafka's threads are already gone after close().
    os._exit(0)
