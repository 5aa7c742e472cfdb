// The JetStream load generator for Brook's benchmark harness (test/bench/run.ts, group
// "peers"). Built by the harness into a temporary directory against the Debian-packaged
// nats.go (GOPATH=/usr/share/gocode, GO111MODULE=off), started once per measured run,
// and prints one JSON line on stdout. Any failure exits 1 with a message on stderr.
//
//	jsbench publish -url nats://127.0.0.1:4222 -stream S -messages N -size B -publishers P -window W [-replicas R]
//	jsbench consume -url nats://127.0.0.1:4222 -stream S -messages N -batch B -consumer pull|ordered
//
// publish deletes the stream S if it exists, creates it afresh (file storage, R replicas
// (default 1; R3 needs a JetStream cluster, and creation is retried for 30 s while it
// elects its meta leader), subject S), then P publishers, each on its own connection, publish N/P
// messages of B bytes with PublishAsync, each keeping at most W acknowledgements
// outstanding; the clock runs from the first publish to the last acknowledgement. It
// checks that the stream then holds N messages.
//
// consume drains the first N messages of S with a fresh consumer (ack none): "pull"
// fetches batches of B with a pull consumer, one fetch at a time; "ordered" uses an
// ordered push consumer (server-side flow control). The clock runs from the
// subscription to the N-th message.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Messages         int     `json:"messages"`
	PayloadBytes     int64   `json:"payloadBytes"`
	Seconds          float64 `json:"seconds"`
	MessagesPerSec   float64 `json:"messagesPerSec"`
	PayloadMBPerSec  float64 `json:"payloadMBPerSec"`
	ClientCPUSeconds float64 `json:"clientCpuSeconds"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "jsbench: "+format+"\n", args...)
	os.Exit(1)
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func report(messages int, size int, seconds float64) {
	payload := int64(messages) * int64(size)
	out, _ := json.Marshal(result{
		Messages:         messages,
		PayloadBytes:     payload,
		Seconds:          seconds,
		MessagesPerSec:   float64(messages) / seconds,
		PayloadMBPerSec:  float64(payload) / 1e6 / seconds,
		ClientCPUSeconds: cpuSeconds(),
	})
	fmt.Println(string(out))
}

// values returns `count` distinct pseudo-text values of `size` bytes (the content does
// not matter to JetStream, which neither compresses nor inspects it).
func values(count, size int) [][]byte {
	const alphabet = "etaoinshrdlucmfwypvbgkjqxz ETAOIN.,"
	state := uint32(1)
	out := make([][]byte, count)
	for i := range out {
		value := make([]byte, size)
		for j := range value {
			state = state*1664525 + 1013904223
			value[j] = alphabet[(state>>16)%uint32(len(alphabet))]
		}
		out[i] = value
	}
	return out
}

func connect(url string) *nats.Conn {
	nc, err := nats.Connect(url, nats.Name("brook-bench"), nats.Timeout(10*time.Second))
	if err != nil {
		fail("connect %s: %v", url, err)
	}
	return nc
}

func jetStream(nc *nats.Conn) nats.JetStreamContext {
	js, err := nc.JetStream(nats.MaxWait(30 * time.Second))
	if err != nil {
		fail("JetStream context: %v", err)
	}
	return js
}

func publish(url, stream string, messages, size, publishers, window, replicas int) {
	admin := connect(url)
	defer admin.Close()
	adminJs := jetStream(admin)
	if err := adminJs.DeleteStream(stream); err != nil && !errors.Is(err, nats.ErrStreamNotFound) {
		fail("delete stream %s: %v", stream, err)
	}
	config := &nats.StreamConfig{
		Name: stream, Subjects: []string{stream}, Storage: nats.FileStorage, Replicas: replicas,
		Retention: nats.LimitsPolicy, Discard: nats.DiscardOld,
	}
	// A JetStream cluster that has just started answers "temporarily unavailable" (or
	// not at all) until its meta group has a leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := adminJs.AddStream(config)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail("add stream %s (%d replicas): %v", stream, replicas, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	conns := make([]*nats.Conn, publishers)
	contexts := make([]nats.JetStreamContext, publishers)
	for i := range conns {
		conns[i] = connect(url)
		defer conns[i].Close()
		contexts[i] = jetStream(conns[i])
	}
	pool := values(256, size)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	started := time.Now()
	for p := 0; p < publishers; p++ {
		count := messages / publishers
		if p < messages%publishers {
			count++
		}
		wg.Add(1)
		go func(js nats.JetStreamContext, count int) {
			defer wg.Done()
			// A ring of the last `window` futures: before publishing message i, wait
			// for the acknowledgement of message i-window.
			ring := make([]nats.PubAckFuture, window)
			wait := func(f nats.PubAckFuture) error {
				select {
				case <-f.Ok():
					return nil
				case err := <-f.Err():
					return err
				case <-time.After(60 * time.Second):
					return errors.New("no acknowledgement within 60 s")
				}
			}
			for i := 0; i < count; i++ {
				slot := i % window
				if ring[slot] != nil {
					if err := wait(ring[slot]); err != nil {
						errs <- err
						return
					}
				}
				f, err := js.PublishAsync(stream, pool[i%len(pool)])
				if err != nil {
					errs <- err
					return
				}
				ring[slot] = f
			}
			for _, f := range ring {
				if f != nil {
					if err := wait(f); err != nil {
						errs <- err
						return
					}
				}
			}
		}(contexts[p], count)
	}
	wg.Wait()
	seconds := time.Since(started).Seconds()
	close(errs)
	for err := range errs {
		fail("publish: %v", err)
	}
	info, err := adminJs.StreamInfo(stream)
	if err != nil {
		fail("stream info: %v", err)
	}
	if info.State.Msgs != uint64(messages) {
		fail("stream %s holds %d messages, expected %d", stream, info.State.Msgs, messages)
	}
	report(messages, size, seconds)
}

func consume(url, stream string, messages, batch int, kind string) {
	nc := connect(url)
	defer nc.Close()
	js := jetStream(nc)
	received := 0
	var payload int64
	var started time.Time
	switch kind {
	case "pull":
		started = time.Now()
		sub, err := js.PullSubscribe(stream, "", nats.BindStream(stream), nats.AckNone(), nats.DeliverAll(),
			nats.ReplayInstant(), nats.InactiveThreshold(time.Minute))
		if err != nil {
			fail("pull subscribe: %v", err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			fail("pending limits: %v", err)
		}
		for received < messages {
			want := batch
			if messages-received < want {
				want = messages - received
			}
			msgs, err := sub.Fetch(want, nats.MaxWait(30*time.Second))
			if err != nil {
				fail("fetch after %d messages: %v", received, err)
			}
			for _, m := range msgs {
				payload += int64(len(m.Data))
			}
			received += len(msgs)
		}
		_ = sub.Unsubscribe()
	case "ordered":
		done := make(chan struct{})
		started = time.Now()
		sub, err := js.Subscribe(stream, func(m *nats.Msg) {
			if received >= messages {
				return
			}
			payload += int64(len(m.Data))
			received++
			if received == messages {
				close(done)
			}
		}, nats.BindStream(stream), nats.OrderedConsumer(), nats.DeliverAll())
		if err != nil {
			fail("ordered subscribe: %v", err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			fail("pending limits: %v", err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Minute):
			fail("ordered consumer got %d of %d messages", received, messages)
		}
		_ = sub.Unsubscribe()
	default:
		fail("unknown consumer %q (pull or ordered)", kind)
	}
	seconds := time.Since(started).Seconds()
	if received != messages {
		fail("received %d messages, expected %d", received, messages)
	}
	size := 0
	if messages > 0 {
		size = int(payload / int64(messages))
	}
	report(messages, size, seconds)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: jsbench publish|consume [flags]")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := flags.String("url", nats.DefaultURL, "server URL")
	stream := flags.String("stream", "BENCH", "stream (and subject) name")
	messages := flags.Int("messages", 100000, "messages to publish or consume")
	size := flags.Int("size", 1024, "message size in bytes (publish)")
	publishers := flags.Int("publishers", 1, "publishers, one connection each (publish)")
	window := flags.Int("window", 256, "acknowledgements outstanding per publisher (publish)")
	replicas := flags.Int("replicas", 1, "stream replicas (publish; more than 1 needs a JetStream cluster)")
	batch := flags.Int("batch", 10000, "messages per fetch (consume, pull)")
	consumer := flags.String("consumer", "ordered", "pull or ordered (consume)")
	if err := flags.Parse(os.Args[2:]); err != nil {
		fail("%v", err)
	}
	switch os.Args[1] {
	case "publish":
		if *publishers < 1 || *window < 1 || *messages < 1 || *replicas < 1 {
			fail("publishers, window, messages and replicas must be positive")
		}
		publish(*url, *stream, *messages, *size, *publishers, *window, *replicas)
	case "consume":
		consume(*url, *stream, *messages, *batch, *consumer)
	default:
		fail("unknown mode %q (publish or consume)", os.Args[1])
	}
}
