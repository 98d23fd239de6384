package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

// Change is what a write replaced with a different value: keys of a job, or, for a bulk run that
// changed anything, every key of it (All). Whoever keeps copies of values (an api's memory, a
// downstream HTTP cache) drops or purges them.
type Change struct {
	Job  string
	Keys []string
	All  bool
}

// Changes are told on the namespace's channel, one message a key: "job:key" (job names have no
// colon), or "job" alone for every key of the job.
func changeMessage(job, key string) string { return job + ":" + key }

func parseChange(msg string) Change {
	job, key, one := strings.Cut(msg, ":")
	if !one {
		return Change{Job: job, All: true}
	}
	return Change{Job: job, Keys: []string{key}}
}

// RunDigest sums up the values a bulk run wrote, whatever the order they came in: comparing it
// with the previous run's tells whether the run changed anything, without reading the values it
// replaced.
type RunDigest struct{ sum uint64 }

// Add counts the entry of key.
func (d *RunDigest) Add(key string, e Entry) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], xxhash.Sum64String(key))
	h := xxhash.New()
	h.Write(b[:])         //nolint:errcheck // a hash's Write does not fail
	h.WriteString(e.ETag) //nolint:errcheck // likewise
	d.sum += h.Sum64()
}

// EndRun records the digest of a bulk run of job that succeeded, and tells of a change of every
// key of the job when it differs from the last run's (or there was none).
func (s *Store) EndRun(ctx context.Context, job string, d RunDigest) (changed bool, err error) {
	prev, err := s.rdb.SetArgs(ctx, s.keys.Digest(job), strconv.FormatUint(d.sum, 10), redis.SetArgs{Get: true}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, translate(err)
	}
	if prev == strconv.FormatUint(d.sum, 10) {
		return false, nil
	}
	if err := s.rdb.Publish(ctx, s.keys.Changes(), job).Err(); err != nil {
		return true, translate(err)
	}
	if s.changed != nil {
		s.changed(Change{Job: job, All: true})
	}
	return true, nil
}

// Watcher is told of the changes of a namespace (Store.Watch).
type Watcher interface {
	// Subscribed is called each time the subscription starts, the first time and after each
	// loss: changes made while it was lost were not told, and copies kept meanwhile may be old.
	Subscribed()
	// Lost is called when the subscription is lost, before it is tried again.
	Lost(err error)
	// Changed is called with each change.
	Changed(Change)
}

// Watch tells w of every change made in the namespace until ctx ends, subscribing again, with a
// pause, whenever the subscription is lost.
func (s *Store) Watch(ctx context.Context, w Watcher) {
	for ctx.Err() == nil {
		sub := s.rdb.Subscribe(ctx, s.keys.Changes())
		err := s.receive(ctx, sub, w)
		sub.Close()
		if ctx.Err() != nil {
			return
		}
		w.Lost(translate(err))
		select {
		case <-ctx.Done():
		case <-time.After(watchRetry):
		}
	}
}

const (
	// watchRetry is the pause before subscribing again.
	watchRetry = 100 * time.Millisecond
	// watchPing is how long a quiet subscription waits before it checks that its connection
	// still answers; one that does not answer within as long again is lost.
	watchPing = time.Second
)

// errNoPong reports a subscription whose connection stopped answering.
var errNoPong = errors.New("the subscription's connection does not answer")

// receive hands w what one subscription receives, until it fails.
func (s *Store) receive(ctx context.Context, sub *redis.PubSub, w Watcher) error {
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, watchPing)
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() && ctx.Err() == nil {
			if pinged {
				return errNoPong
			}
			if err := sub.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		}
		if err != nil {
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				w.Subscribed()
			}
		case *redis.Message:
			w.Changed(parseChange(m.Payload))
		}
	}
}
