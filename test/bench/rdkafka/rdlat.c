// The librdkafka latency client of Brook's benchmark harness (test/bench/run.ts, group
// "latency"): what a user of librdkafka (and of the Java client, which batches the same
// way) sees. Built by the harness with the system C compiler against Debian's
// librdkafka-dev, run once per measured run; prints one JSON line on stdout, and exits 1
// with a message on stderr on any failure.
//
//   rdlat -b HOST:PORT -t TOPIC -p PARTITIONS -r BYTES_PER_SEC -s SIZE -d SECONDS -a ACKS [-P PID]
//
// With -P, the CPU seconds process PID (the broker) used over the measured window, from
// the first message due to the last one consumed, are reported too (Linux /proc).
//
//   rdlat -m drain -b HOST:PORT -t TOPIC -p PARTITIONS -n MESSAGES [-P PID]
//
// drain: a consumer alone, with librdkafka's default fetch sizes, assigned every
// partition from its beginning, reads MESSAGES messages as fast as it can; the clock runs
// from the assignment to the last of them.
//
// One process, one thread: a producer (linger.ms=0, the given acks, no idempotence) and
// a consumer assigned every partition from its beginning (the topic is a fresh one).
// Message i is due at start + i * SIZE / RATE and carries that due time (CLOCK_MONOTONIC,
// the same clock as its reader), so a stall anywhere (client queue, broker, consumer)
// shows as latency of every message due during it instead of hiding behind a late send.
// Messages go round-robin over the partitions. End-to-end latency is the time from due to
// consumed; acknowledgement latency the time from due to the delivery report. After the
// last message is due the consumer has 10 s to see everything; a message never seen
// fails the run.
//
// Between messages the thread sleeps (ppoll) until the next one is due or librdkafka
// queues a consumed message or a delivery report (its queues' IO events write to a pipe),
// as an application would. It must not spin: on a machine with two cores a client that
// polls without sleeping takes the CPU the broker needs, and the latency it measures is
// then its own.
#define _GNU_SOURCE /* ppoll, pipe2 */
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/** A message is a stall's victim above this end-to-end latency. */
#define STALL_NS (50 * 1000000LL)
#define MAGIC 0x62726f6f6b6c6174ULL /* "brooklat" */

static void fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fprintf(stderr, "rdlat: ");
  vfprintf(stderr, format, args);
  fprintf(stderr, "\n");
  va_end(args);
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** CPU seconds of process `pid` so far (utime + stime in /proc/<pid>/stat); -1 if unknown. */
static double process_cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  char path[64], text[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *file = fopen(path, "r");
  if (file == NULL) return -1;
  size_t length = fread(text, 1, sizeof text - 1, file);
  fclose(file);
  text[length] = 0;
  char *rest = strrchr(text, ')');
  if (rest == NULL) return -1;
  unsigned long utime = 0, stime = 0;
  // After ") ": state is field 3; utime and stime are fields 14 and 15.
  if (sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
  return (double)(utime + stime) / 100.0; /* USER_HZ */
}

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

/** What each message carries: a marker, its index and its due time. */
struct stamp {
  uint64_t magic;
  uint64_t index;
  int64_t due_ns;
};

static int64_t *e2e;      /* by message index, -1 until consumed */
static int64_t *acked;    /* by message index, -1 until acknowledged */
static int64_t delivery_errors;
static char first_delivery_error[256];

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
  (void)rk;
  (void)opaque;
  uint64_t index = (uint64_t)(uintptr_t)message->_private;
  if (message->err) {
    if (delivery_errors++ == 0)
      snprintf(first_delivery_error, sizeof first_delivery_error, "%s", rd_kafka_err2str(message->err));
    return;
  }
  const struct stamp *stamp = message->payload;
  acked[index] = now_ns() - stamp->due_ns;
}

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/** Sorted copy's percentile `q` (0..1) in ms; the array must be sorted. */
static double percentile_ms(const int64_t *sorted, size_t count, double q) {
  if (count == 0) return -1;
  size_t at = (size_t)(q * (double)(count - 1) + 0.5);
  return sorted[at] / 1e6;
}

/** Sets each name = value pair of `settings`; any refusal ends the run. */
static void set_all(rd_kafka_conf_t *conf, const char *settings[][2], size_t count) {
  char error[512];
  for (size_t i = 0; i < count; i++) {
    if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], error, sizeof error) != RD_KAFKA_CONF_OK)
      fail("%s", error);
  }
}

#define SET_ALL(conf, settings) set_all(conf, settings, sizeof settings / sizeof settings[0])

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *acks) {
  char error[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *common[][2] = {
      {"bootstrap.servers", bootstrap},
      {"client.id", "brook-rdlat"},
      {"api.version.request", "true"},
  };
  SET_ALL(conf, common);
  if (type == RD_KAFKA_PRODUCER) {
    const char *producer[][2] = {
        {"acks", acks},
        {"linger.ms", "0"},
        {"enable.idempotence", "false"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
    };
    SET_ALL(conf, producer);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  } else {
    const char *consumer[][2] = {
        {"group.id", "brook-rdlat"},
        {"enable.auto.commit", "false"},
        {"fetch.wait.max.ms", "500"},
        {"fetch.min.bytes", "1"},
    };
    SET_ALL(conf, consumer);
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, error, sizeof error);
  if (rk == NULL) fail("%s", error);
  return rk;
}

/** Takes whatever the consumer has now (waits up to `wait_ms` for the first). */
static size_t consume(rd_kafka_t *consumer, int wait_ms, uint64_t total) {
  size_t seen = 0;
  for (rd_kafka_message_t *message = rd_kafka_consumer_poll(consumer, wait_ms); message != NULL;
       message = rd_kafka_consumer_poll(consumer, 0)) {
    int64_t at = now_ns();
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR && message->len >= sizeof(struct stamp)) {
      struct stamp stamp;
      memcpy(&stamp, message->payload, sizeof stamp);
      if (stamp.magic == MAGIC && stamp.index < total && e2e[stamp.index] < 0) {
        e2e[stamp.index] = at - stamp.due_ns;
        seen++;
      }
    } else if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && message->err) {
      fprintf(stderr, "rdlat: consumer: %s\n", rd_kafka_message_errstr(message));
    }
    rd_kafka_message_destroy(message);
  }
  return seen;
}

/** A pipe written to by librdkafka whenever one of the watched queues stops being empty. */
static int wake_fds[2] = {-1, -1};

static void watch_queue(rd_kafka_queue_t *queue) {
  rd_kafka_queue_io_event_enable(queue, wake_fds[1], "!", 1);
  rd_kafka_queue_destroy(queue);
}

/**
 * Sleeps until `until_ns` (CLOCK_MONOTONIC) or until a watched queue gets an event,
 * whichever is first. The caller serves the queues afterwards until they are empty, so an
 * event queued while it served them wakes the next sleep at once.
 */
static void sleep_until(int64_t until_ns) {
  int64_t wait = until_ns - now_ns();
  if (wait <= 0) return;
  struct timespec timeout = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
  struct pollfd watched = {wake_fds[0], POLLIN, 0};
  if (ppoll(&watched, 1, &timeout, NULL) > 0) {
    char drained[64];
    while (read(wake_fds[0], drained, sizeof drained) > 0) {
    }
  }
}

/** The drain mode: reads `count` messages from the beginning of every partition. */
static int drain(const char *bootstrap, const char *topic, int partitions, uint64_t count, int server_pid) {
  rd_kafka_t *consumer = client(RD_KAFKA_CONSUMER, bootstrap, "all");
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  double cpu_before = cpu_seconds();
  double server_before = process_cpu_seconds(server_pid);
  const int64_t start = now_ns();
  rd_kafka_resp_err_t err = rd_kafka_assign(consumer, assignment);
  if (err) fail("assign: %s", rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(assignment);
  uint64_t seen = 0, bytes = 0;
  int64_t deadline = start + 600000000000LL;
  while (seen < count) {
    if (now_ns() > deadline) fail("%" PRIu64 " of %" PRIu64 " messages read in 600 s", seen, count);
    rd_kafka_message_t *message = rd_kafka_consumer_poll(consumer, 100);
    if (message == NULL) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      seen++;
      bytes += message->len;
    } else if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      fail("consumer: %s", rd_kafka_message_errstr(message));
    }
    rd_kafka_message_destroy(message);
  }
  double wall = (now_ns() - start) / 1e9;
  double server_after = process_cpu_seconds(server_pid);
  double server_cpu = server_before < 0 || server_after < 0 ? -1 : server_after - server_before;
  double cpu = cpu_seconds() - cpu_before;
  printf("{\"messages\":%" PRIu64 ",\"payloadBytes\":%" PRIu64 ",\"seconds\":%.3f,\"payloadMBPerSec\":%.3f,"
         "\"clientCpuSeconds\":%.3f,\"serverCpuSeconds\":%.3f}\n",
         seen, bytes, wall, bytes / 1e6 / wall, cpu, server_cpu);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return 0;
}

int main(int argc, char **argv) {
  const char *bootstrap = NULL, *topic = NULL, *acks = "all", *mode = "latency";
  int partitions = 1, size = 1024, server_pid = 0;
  double rate = 10e6, seconds = 10, count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *flag = argv[i], *value = argv[i + 1];
    if (!strcmp(flag, "-m")) mode = value;
    else if (!strcmp(flag, "-n")) count = atof(value);
    else if (!strcmp(flag, "-b")) bootstrap = value;
    else if (!strcmp(flag, "-t")) topic = value;
    else if (!strcmp(flag, "-p")) partitions = atoi(value);
    else if (!strcmp(flag, "-r")) rate = atof(value);
    else if (!strcmp(flag, "-s")) size = atoi(value);
    else if (!strcmp(flag, "-d")) seconds = atof(value);
    else if (!strcmp(flag, "-a")) acks = value;
    else if (!strcmp(flag, "-P")) server_pid = atoi(value);
    else fail("unknown flag %s", flag);
  }
  if (!strcmp(mode, "drain")) {
    if (bootstrap == NULL || topic == NULL || partitions < 1 || count < 1)
      fail("usage: rdlat -m drain -b HOST:PORT -t TOPIC -p PARTITIONS -n MESSAGES [-P PID]");
    return drain(bootstrap, topic, partitions, (uint64_t)count, server_pid);
  }
  if (strcmp(mode, "latency")) fail("unknown mode %s (latency or drain)", mode);
  if (bootstrap == NULL || topic == NULL || partitions < 1 || rate <= 0 || seconds <= 0 ||
      size < (int)sizeof(struct stamp))
    fail("usage: rdlat -b HOST:PORT -t TOPIC -p PARTITIONS -r BYTES_PER_SEC -s SIZE -d SECONDS -a ACKS");
  const uint64_t total = (uint64_t)(rate * seconds / size);
  const int64_t interval_ns = (int64_t)(1e9 * size / rate);
  e2e = malloc(total * sizeof *e2e);
  acked = malloc(total * sizeof *acked);
  if (e2e == NULL || acked == NULL) fail("out of memory for %" PRIu64 " messages", total);
  for (uint64_t i = 0; i < total; i++) e2e[i] = acked[i] = -1;

  rd_kafka_t *consumer = client(RD_KAFKA_CONSUMER, bootstrap, acks);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t err = rd_kafka_assign(consumer, assignment);
  if (err) fail("assign: %s", rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(assignment);
  rd_kafka_t *producer = client(RD_KAFKA_PRODUCER, bootstrap, acks);
  rd_kafka_topic_t *handle = rd_kafka_topic_new(producer, topic, NULL);
  // Let both connect and the consumer start fetching before anything is due.
  int64_t settle = now_ns() + 2000000000LL;
  while (now_ns() < settle) consume(consumer, 100, total);

  char *payload = calloc(1, (size_t)size);
  if (pipe2(wake_fds, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2 failed");
  watch_queue(rd_kafka_queue_get_consumer(consumer));
  watch_queue(rd_kafka_queue_get_main(producer));
  double cpu_before = cpu_seconds();
  double server_before = process_cpu_seconds(server_pid);
  const int64_t start = now_ns();
  uint64_t next = 0, seen = 0;
  while (next < total) {
    int64_t now = now_ns();
    while (next < total && start + (int64_t)next * interval_ns <= now) {
      struct stamp stamp = {MAGIC, next, start + (int64_t)next * interval_ns};
      memcpy(payload, &stamp, sizeof stamp);
      int partition = (int)(next % (uint64_t)partitions);
      while (rd_kafka_produce(handle, partition, RD_KAFKA_MSG_F_COPY, payload, (size_t)size, NULL, 0,
                              (void *)(uintptr_t)next) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          fail("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_poll(producer, 1);
      }
      next++;
    }
    rd_kafka_poll(producer, 0);
    seen += consume(consumer, 0, total);
    if (next < total) sleep_until(start + (int64_t)next * interval_ns);
  }
  int64_t deadline = now_ns() + 10000000000LL;
  while (seen < total && now_ns() < deadline) {
    rd_kafka_poll(producer, 0);
    seen += consume(consumer, 0, total);
    if (seen < total) sleep_until(now_ns() + 10000000LL);
  }
  double wall = (now_ns() - start) / 1e9;
  double server_after = process_cpu_seconds(server_pid);
  double server_cpu = server_before < 0 || server_after < 0 ? -1 : server_after - server_before;
  rd_kafka_flush(producer, 10000);
  double cpu = cpu_seconds() - cpu_before;
  if (delivery_errors > 0) fail("%" PRId64 " messages not acknowledged: %s", delivery_errors, first_delivery_error);
  if (seen < total) fail("%" PRIu64 " of %" PRIu64 " messages never consumed", total - seen, total);

  int64_t stalls = 0;
  for (uint64_t i = 0, in_stall = 0; i < total; i++) {
    int over = e2e[i] > STALL_NS;
    if (over && !in_stall) stalls++;
    in_stall = (uint64_t)over;
  }
  qsort(e2e, total, sizeof *e2e, compare);
  uint64_t acks_seen = 0;
  for (uint64_t i = 0; i < total; i++)
    if (acked[i] >= 0) acked[acks_seen++] = acked[i];
  qsort(acked, acks_seen, sizeof *acked, compare);
  printf("{\"messages\":%" PRIu64 ",\"seconds\":%.3f,\"p50Ms\":%.3f,\"p99Ms\":%.3f,\"p999Ms\":%.3f,"
         "\"maxMs\":%.3f,\"ackP50Ms\":%.3f,\"ackP99Ms\":%.3f,\"ackP999Ms\":%.3f,\"ackMaxMs\":%.3f,"
         "\"stallsOver50Ms\":%" PRId64 ",\"clientCpuSeconds\":%.3f,\"serverCpuSeconds\":%.3f}\n",
         total, wall, percentile_ms(e2e, total, 0.5), percentile_ms(e2e, total, 0.99),
         percentile_ms(e2e, total, 0.999), e2e[total - 1] / 1e6, percentile_ms(acked, acks_seen, 0.5),
         percentile_ms(acked, acks_seen, 0.99), percentile_ms(acked, acks_seen, 0.999),
         acks_seen > 0 ? acked[acks_seen - 1] / 1e6 : -1, stalls, cpu, server_cpu);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_topic_destroy(handle);
  rd_kafka_destroy(producer);
  free(payload);
  return 0;
}
