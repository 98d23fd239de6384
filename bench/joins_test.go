package bench

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/internal/testenv"
)

// BenchmarkJoinedWrites measures how fast a write made straight in SQL, by another service, shows
// through the api for jobs whose dependencies PostgreSQL found, at 1M rows: the metering schema
// (internal/testenv/metering.sql) with 100,000 accounts and 1,000,000 usage events, the
// metering jobs file (no depends_on), the real warmer and api with default settings, and the
// indexes warmer check advises for it. 100 usage events are inserted one at a time, 100 ms apart;
// for each, the time from the commit until the api serves the new value is taken for every key it
// changes: its account's (exact keys), its plan's (joined keys, through a view), its region and
// day's (a composite key: the day from the row, the region through the join) and the total (a
// single value).
func BenchmarkJoinedWrites(b *testing.B) {
	for range b.N {
		benchJoinedWrites(b, 100_000, 1_000_000)
	}
}

func benchJoinedWrites(b *testing.B, accounts, events int) {
	started := time.Now()
	dbURL := testenv.NewMeteringDatabase(b, accounts, events)
	b.Logf("metering schema: %d accounts, %d usage events, made in %s", accounts, events, time.Since(started).Round(time.Millisecond))
	psql(b, dbURL, `CREATE INDEX ON metering."Accounts" ("Region"); CREATE INDEX ON metering."UsageEvents" ("Day")`)
	w := testenv.NewWriter(b, dbURL, 2)
	ns := testenv.Namespace(b)
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Get(b).RedisURL, "CACHE_NAMESPACE=" + ns,
		"JOBS_FILE=" + testenv.JobsFile(b, testenv.MeteringJobs)}
	startWarmerWarm(b, env, 4)
	api := "http://" + startAPI(b, dbURL, ns, env...)

	type key struct{ name, path string }
	visible := map[string][]time.Duration{}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		account, day := 1+r.IntN(accounts), fmt.Sprintf("2026-11-%02d", 1+r.IntN(28))
		region := w.Text(`SELECT "Region" FROM metering."Accounts" WHERE account_id = $1`, account)
		plan := w.Text(`SELECT plan_id::text FROM metering."Accounts" WHERE account_id = $1`, account)
		keys := []key{
			{"exact: usage_by_account", fmt.Sprintf("/v1/results/usage_by_account/%d", account)},
			{"joined: usage_by_plan", "/v1/results/usage_by_plan/" + plan},
			{"composite: usage_by_region_day", "/v1/results/usage_by_region_day/" + url.PathEscape(region+"/"+day)},
			{"single: total_units", "/v1/results/total_units"},
		}
		before := map[key]string{}
		for _, k := range keys {
			before[k] = get(b, api+k.path) // held in memory before the write
		}
		if _, err := w.Exec(`INSERT INTO metering."UsageEvents" (account_id, "Day", units) VALUES ($1, $2, 1)`, account, day); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		var g errgroup.Group
		results := make([]time.Duration, len(keys))
		for i, k := range keys {
			g.Go(func() error {
				for {
					got, err := fetch(api + k.path)
					if err != nil {
						return err
					}
					if got != before[k] {
						results[i] = time.Since(committed)
						return nil
					}
					if time.Since(committed) > 10*time.Second {
						return fmt.Errorf("%s not visible 10 s after the write", k.path)
					}
					time.Sleep(time.Millisecond) // polling, with a deadline
				}
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		for i, k := range keys {
			visible[k.name] = append(visible[k.name], results[i])
		}
		time.Sleep(100 * time.Millisecond) // pacing
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, name := range slices.Sorted(maps.Keys(visible)) {
		at := visible[name]
		slices.Sort(at)
		b.ReportMetric(ms(at[98]), "p99-ms-"+strings.Fields(name)[1])
		b.Logf("summary: 1M usage events, write in SQL to visible at the api, %-32s p50 %5.1f ms, p99 %5.1f ms",
			name, ms(at[50]), ms(at[98]))
	}
}
