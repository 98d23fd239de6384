package cache

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Invalidation is what a write replaced with a different value: keys of a job, or every key of it
// (All). Whoever keeps copies of values (an api's memory, a downstream HTTP cache) drops or
// purges them.
type Invalidation struct {
	Job  string
	Keys []string
	All  bool
}

// Changes are told on the namespace's channel, one message a key: "job:key" (job names have no
// colon), or "job" alone for every key of the job.
func invalidationMessage(job, key string) string { return job + ":" + key }

func parseInvalidation(msg string) Invalidation {
	job, key, one := strings.Cut(msg, ":")
	if !one {
		return Invalidation{Job: job, All: true}
	}
	return Invalidation{Job: job, Keys: []string{key}}
}

// mostKeysTold is the most keys of a batch told one by one: a batch that changed more tells of
// a change of every key of its job, in one message rather than a thousand (the first run into
// an empty Redis, a run after a day of changes); the job's copies are then dropped whole.
const mostKeysTold = 100

// announce tells of the change of job's keys: on the namespace's channel, and to Options.Invalidated.
func (s *Store) announce(ctx context.Context, job string, keys []string) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c := Invalidation{Job: job, Keys: keys}
	if len(keys) > mostKeysTold {
		c = Invalidation{Job: job, All: true}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if c.All {
			p.Publish(ctx, s.keys.Changes(), job)
		}
		for _, key := range c.Keys {
			p.Publish(ctx, s.keys.Changes(), invalidationMessage(job, key))
		}
		return nil
	})
	if err != nil {
		return s.failure(ctx, err)
	}
	if s.invalidated != nil {
		s.invalidated(c)
	}
	return nil
}

// Watcher is told of the changes of a namespace (Store.Watch).
type Watcher interface {
	// Subscribed is called each time the subscription starts, the first time and after each
	// loss: changes made while it was lost were not told, and copies kept meanwhile may be old.
	Subscribed()
	// Lost is called when the subscription is lost, before it is tried again.
	Lost(err error)
	// Invalidated is called with each invalidation.
	Invalidated(Invalidation)
}

// Watch tells w of the changes of the namespace's values until ctx ends, subscribing again,
// with a pause, whenever the subscription is lost.
//
// Redis tells them itself (server-assisted client-side caching): one connection of Watch's own
// turns on CLIENT TRACKING in broadcasting mode over the namespace's prefix, redirected to
// itself, and subscribes to Redis's invalidation channel. Every write, deletion, expiry or
// eviction of a value is told, whoever made it: a warmer killed between writing and telling, an
// operator's DEL, a FLUSHALL (told as a lost subscription, which w reads as "anything may have
// changed"). Tracking and subscription live and die with that connection, so a change is never
// missed unnoticed: a lost connection is Lost, and the next one starts with Subscribed.
//
// On a Redis Cluster, whose nodes each track their own keys, Watch listens to the namespace's
// channel instead, which tells of the changes warmcache's own writes make (TellsEveryChange).
func (s *Store) Watch(ctx context.Context, w Watcher) {
	subscribe := func() *redis.PubSub { return s.rdb.Subscribe(ctx, s.keys.Changes()) }
	parse := func(m *redis.Message) []Invalidation { return []Invalidation{parseInvalidation(m.Payload)} }
	if s.tracker != nil {
		rdb := s.tracker(s.track)
		defer rdb.Close()
		subscribe = func() *redis.PubSub { return rdb.Subscribe(ctx, trackingChannel) }
		parse = s.tracked
	}
	for ctx.Err() == nil {
		sub := subscribe()
		err := s.receive(ctx, sub, w, parse)
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

// TellsEveryChange reports whether Watch tells of every change of a value, whoever made it
// (CLIENT TRACKING), rather than of the changes warmcache's writes announce (a Cluster).
func (s *Store) TellsEveryChange() bool { return s.tracker != nil }

// trackingChannel is where Redis sends the invalidations of a connection whose tracking is
// redirected to a subscribed connection (RESP2).
const trackingChannel = "__redis__:invalidate"

// track turns on the tracking of the namespace's keys on cn, told to cn itself, which then
// subscribes to trackingChannel. It runs on every connection Watch makes, before it subscribes.
func (s *Store) track(ctx context.Context, cn *redis.Conn) error {
	id, err := cn.ClientID(ctx).Result()
	if err != nil {
		return err
	}
	return cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", "PREFIX", s.keys.ns+":").Err()
}

// tracked reads the keys an invalidation message of Redis names as the invalidations of the
// values among them, one per run of keys of a job. Redis tells of the keys a transaction
// changed in one message: a run's batch of a thousand keys is told, as warmcache's own
// announcements tell it, as a change of every key of its job (mostKeysTold).
func (s *Store) tracked(m *redis.Message) []Invalidation {
	keys := m.PayloadSlice
	if keys == nil {
		keys = []string{m.Payload}
	}
	var out []Invalidation
	for _, k := range keys {
		job, key, ok := s.keys.ParseValue(k)
		switch {
		case !ok:
		case len(out) > 0 && out[len(out)-1].Job == job:
			out[len(out)-1].Keys = append(out[len(out)-1].Keys, key)
		default:
			out = append(out, Invalidation{Job: job, Keys: []string{key}})
		}
	}
	for i, c := range out {
		if len(c.Keys) > mostKeysTold {
			out[i] = Invalidation{Job: c.Job, All: true}
		}
	}
	return out
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

// ErrFlushed reports a subscription to Redis's invalidations ended by a FLUSHDB or FLUSHALL,
// which Redis tells as an invalidation naming no key: every value may have changed.
var ErrFlushed = errors.New("redis was flushed (FLUSHDB or FLUSHALL): every value may have changed")

// receive hands w what one subscription receives, read by parse, until it fails or ctx ends.
// A read does not end with ctx (go-redis reads until its timeout): the loop checks ctx itself,
// or a subscription told of changes more often than watchPing would never return.
func (s *Store) receive(ctx context.Context, sub *redis.PubSub, w Watcher, parse func(*redis.Message) []Invalidation) error {
	pinged := false
	for ctx.Err() == nil {
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
			for _, c := range parse(m) {
				w.Invalidated(c)
			}
		}
	}
	return ctx.Err()
}
