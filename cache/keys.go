// Package cache owns everything warmcache keeps in Redis: the key of every value, the byte
// format of cached entries, TTL policies, the versioned writes that keep an older result from
// overwriting a newer one, job run records, and invalidation events.
package cache

import (
	"fmt"
	"regexp"
	"strings"
)

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Keys builds every Redis key of one namespace. Values live at <namespace>:<job> for
// single-value jobs and <namespace>:<job>:<key> for keyed ones; the product's own records live
// under <namespace>:_ (job names cannot start with an underscore, so the two never meet).
type Keys struct {
	ns string
}

// NewKeys returns the keys of namespace, which must be 1 to 64 letters, digits or "_.-".
func NewKeys(namespace string) (Keys, error) {
	if !namespacePattern.MatchString(namespace) {
		return Keys{}, fmt.Errorf("namespace %q must be 1 to 64 letters, digits, '_', '.' or '-'", namespace)
	}
	return Keys{ns: namespace}, nil
}

// Namespace returns the namespace the keys are in.
func (k Keys) Namespace() string { return k.ns }

// Value is the key of a job's value: key is empty for a single-value job.
func (k Keys) Value(job, key string) string {
	if key == "" {
		return k.ns + ":" + job
	}
	return k.ns + ":" + job + ":" + key
}

// ParseValue returns the job and key of a value's Redis key, and false for a key that is not
// a value of this namespace (the product's own records included).
func (k Keys) ParseValue(redisKey string) (job, key string, ok bool) {
	rest, ok := strings.CutPrefix(redisKey, k.ns+":")
	if !ok || rest == "" || rest[0] == '_' {
		return "", "", false
	}
	job, key, _ = strings.Cut(rest, ":")
	return job, key, true
}

// ValuePattern matches the keys of every value of a keyed job (SCAN MATCH): namespaces and job
// names hold no glob characters.
func (k Keys) ValuePattern(job string) string { return k.ns + ":" + job + ":*" }

// Surrogate is the surrogate key (a cache tag) of a job's value at key, or of all the job's
// values when key is empty: the api labels its answers with them, and the warmer purges
// downstream HTTP caches by them. A key's characters outside letters, digits and "-._~" are
// escaped, so a surrogate key never holds a space or a comma, the separators of such lists.
func (k Keys) Surrogate(job, key string) string {
	if key == "" {
		return k.ns + ":" + job
	}
	return k.ns + ":" + job + ":" + surrogateEscape(key)
}

// surrogateEscape percent-escapes what is not an unreserved character of RFC 3986.
func surrogateEscape(s string) string {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = unreserved(s[i])
	}
	if plain {
		return s // customer ids and most keys
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if unreserved(s[i]) {
			b.WriteByte(s[i])
		} else {
			fmt.Fprintf(&b, "%%%02X", s[i])
		}
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// Runs is the list of a job's last runs, newest first.
func (k Keys) Runs(job string) string { return k.ns + ":_runs:" + job }

// Lag is the list of the invalidation lag windows the warmers record (LagWindow).
func (k Keys) Lag() string { return k.ns + ":_lag" }

// Fence is the key holding the snapshot position of a job's newest bulk run. (Before positions,
// versions were times, under _fence: and _touched:, which are left to expire.)
func (k Keys) Fence(job string) string { return k.ns + ":_fence_lsn:" + job }

// Touched is the sorted set of a job's keys written one at a time lately, scored by position.
func (k Keys) Touched(job string) string { return k.ns + ":_touched_lsn:" + job }

// DataSet is the key of the data set's mark (Store.MarkDataSet): gone, Redis lost the data set
// the warmers wrote (restarted empty, flushed); naming other servers, Redis came back with older
// data.
func (k Keys) DataSet() string { return k.ns + ":_dataset" }

// Lease is the key of the short lease that lets one process compute a missing value while the
// others wait for it.
func (k Keys) Lease(job, key string) string { return k.ns + ":_lease:" + job + ":" + key }

// Events is the stream invalidation events travel on.
func (k Keys) Events() string { return k.ns + ":_events" }

// Changes is the channel that tells which values writes changed (Invalidation).
func (k Keys) Changes() string { return k.ns + ":_changes" }

// JobsFiles is the hash in which each process announces the digest of the jobs file it loaded.
func (k Keys) JobsFiles() string { return k.ns + ":_jobs_files" }

// Wake is the channel that tells the relays the outbox has new rows.
func (k Keys) Wake() string { return k.ns + ":_wake" }
