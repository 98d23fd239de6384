package invalidate

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// touched asks each job which of its keys changes touch (jobs.Job.AffectedBy), given what their
// joins looked up (nil: not looked up): it returns the keys of each job ("" for a single-value
// job's one value), and the keyed jobs every key of which the changes touch.
func touched(list []jobs.Job, changes []query.Change, joined jobs.Joined) (keys map[string]map[string]bool, whole []string) {
	keys = map[string]map[string]bool{}
	for _, c := range changes {
		for _, job := range list {
			affected, all := job.AffectedBy(c, joined)
			switch {
			case all && job.Keyed():
				if !slices.Contains(whole, job.Name) {
					whole = append(whole, job.Name)
				}
				continue
			case all:
				affected = []string{""}
			}
			for _, key := range affected {
				if keys[job.Name] == nil {
					keys[job.Name] = map[string]bool{}
				}
				keys[job.Name][key] = true
			}
		}
	}
	return keys, whole
}

// dropper removes a job's values from Redis: some keys, or all of them.
type dropper interface {
	Drop(ctx context.Context, job string, keys []string) error
	DropAll(ctx context.Context, job string) error
}

// drop deletes from Redis the values changes touch, and tells of it: for a Redis too full to
// take their new values (or the events that would bring them), readers compute them from
// PostgreSQL rather than serve values known to be stale. A full Redis still deletes. Keys found
// through joins are not looked up: their jobs are dropped whole.
func drop(ctx context.Context, store dropper, list []jobs.Job, changes []query.Change) error {
	keys, whole := touched(list, changes, nil)
	for _, job := range list {
		if err := store.Drop(ctx, job.Name, slices.Sorted(maps.Keys(keys[job.Name]))); err != nil {
			return err
		}
	}
	for _, name := range whole {
		if err := store.DropAll(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// joiner looks up the keys joins find (query.DB.JoinedKeys).
type joiner interface {
	JoinedKeys(ctx context.Context, j query.Join, values []string) (map[string][]string, error)
}

// lookUp looks up what the joins of changes find: one query per join, whatever the number of
// changes.
func lookUp(ctx context.Context, db joiner, list []jobs.Job, changes []query.Change) (jobs.Joined, error) {
	joined := jobs.Joined{}
	for j, values := range jobs.Joins(list, changes) {
		found, err := db.JoinedKeys(ctx, j, values)
		if err != nil {
			return nil, fmt.Errorf("look up the keys %s.%s joins: %w", j.Table, j.KeyColumn, err)
		}
		joined[j] = found
	}
	return joined, nil
}
