package invalidate

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/internal/testenv"
)

// meteringSystem is the product on a database holding only the metering schema, unlike
// dellstore2's, with jobs that declare no depends_on (testenv.MeteringJobs), and a warmer's
// scheduler for the runs whole-job changes request.
func meteringSystem(t *testing.T) *system {
	t.Helper()
	return newSystem(t, systemOptions{relays: 2, refreshers: 2, scheduler: true, jobs: testenv.MeteringJobs,
		database: testenv.NewMeteringDatabase(t, 2000, 20000)})
}

// TestRandomWritesOnAnotherSchema is TestRandomWritesLeaveEveryKeyRight on the metering schema:
// four writers make 4,000 random writes straight in SQL, as another service would: usage events
// added, re-counted, moved to other accounts and days, deleted; accounts moved to other plans
// and regions (rows moving between groups, across joins); every event of an account deleted;
// and once, every event truncated. Once the writes have reached the cache, every key of every
// job equals a fresh full computation, and the keys of groups that are gone are gone.
func TestRandomWritesOnAnotherSchema(t *testing.T) {
	t.Parallel()
	s := meteringSystem(t)
	w := testenv.NewWriter(t, s.dbURL, 4)
	var g errgroup.Group
	for writer := range 4 {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(writer), 22))
			for i := range 1000 {
				account, day := 1+r.IntN(2000), fmt.Sprintf("2026-11-%02d", 1+r.IntN(28))
				var err error
				switch op := r.IntN(100); {
				case writer == 0 && i == 500:
					_, err = w.Exec(`TRUNCATE metering."UsageEvents"`)
				case op < 35:
					_, err = w.Exec(`INSERT INTO metering."UsageEvents" (account_id, "Day", units) VALUES ($1, $2, $3)`,
						account, day, 1+r.IntN(100))
				case op < 50:
					_, err = w.Exec(`UPDATE metering."UsageEvents" SET units = units + 1
						WHERE event_id = (SELECT max(event_id) FROM metering."UsageEvents" WHERE account_id = $1)`, account)
				case op < 60:
					_, err = w.Exec(`UPDATE metering."UsageEvents" SET account_id = $2, "Day" = $3
						WHERE event_id = (SELECT min(event_id) FROM metering."UsageEvents" WHERE account_id = $1)`,
						account, 1+r.IntN(2000), day)
				case op < 70:
					_, err = w.Exec(`UPDATE metering."Accounts" SET plan_id = $2 WHERE account_id = $1`, account, 1+r.IntN(5))
				case op < 80:
					_, err = w.Exec(`UPDATE metering."Accounts" SET "Region" = $2 WHERE account_id = $1`,
						account, []string{"eu", "us", "ap", "sa"}[r.IntN(4)])
				case op < 95:
					_, err = w.Exec(`DELETE FROM metering."UsageEvents"
						WHERE event_id = (SELECT max(event_id) FROM metering."UsageEvents" WHERE account_id = $1)`, account)
				default:
					_, err = w.Exec(`DELETE FROM metering."UsageEvents" WHERE account_id = $1`, account)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	s.outboxEmpty(30 * time.Second)
	s.awaitEveryKeyRight(nil, 60*time.Second)
}

// TestWritesOnAnotherSchemaShowWithinASecond: on the metering schema, each kind of write made
// straight in SQL shows through the api within a second, as HITs, on every key it touches: an
// event added (keyed, joined, composite and single-value jobs), an account moved to another plan
// (both plans), an event moved to another account, a group emptied (404); and every event
// truncated within three seconds, through runs of the keyed jobs.
func TestWritesOnAnotherSchemaShowWithinASecond(t *testing.T) {
	t.Parallel()
	s := meteringSystem(t)
	w := testenv.NewWriter(t, s.dbURL, 1)
	region := func(account int) string {
		return w.Text(`SELECT "Region" FROM metering."Accounts" WHERE account_id = $1`, account)
	}
	plan := func(account int) string {
		return w.Text(`SELECT plan_id::text FROM metering."Accounts" WHERE account_id = $1`, account)
	}
	within := time.Second
	visible := func(keys ...[2]string) {
		t.Helper()
		for _, k := range keys {
			path := "/v1/results/" + k[0]
			if k[1] != "" {
				path += "/" + url.PathEscape(k[1])
			}
			s.waitServes(path, s.sql(k[0], k[1]), within)
		}
	}
	s.exec(`INSERT INTO metering."UsageEvents" (account_id, "Day", units) VALUES (5, '2026-11-30', 7)`)
	visible([2]string{"usage_by_account", "5"}, [2]string{"usage_by_plan", plan(5)},
		[2]string{"usage_by_region_day", region(5) + "/2026-11-30"}, [2]string{"total_units", ""})

	from := plan(6)
	s.exec(`UPDATE metering."Accounts" SET plan_id = plan_id % 5 + 1 WHERE account_id = 6`)
	visible([2]string{"usage_by_plan", from}, [2]string{"usage_by_plan", plan(6)})

	s.exec(`UPDATE metering."UsageEvents" SET account_id = 8 WHERE account_id = 5 AND "Day" = '2026-11-30'`)
	visible([2]string{"usage_by_account", "5"}, [2]string{"usage_by_account", "8"},
		[2]string{"usage_by_region_day", region(5) + "/2026-11-30"}, [2]string{"usage_by_region_day", region(8) + "/2026-11-30"})

	s.exec(`UPDATE metering."Accounts" SET "Region" = 'sa' WHERE account_id = 8`)
	visible([2]string{"usage_by_region_day", "sa/2026-11-30"})

	s.exec(`DELETE FROM metering."UsageEvents" WHERE "Day" = '2026-11-30'`)
	visible([2]string{"usage_by_region_day", "sa/2026-11-30"}) // 404: the group is gone

	// A TRUNCATE names no row: it shows through a run of each keyed job, one after the other.
	within = 3 * time.Second
	s.exec(`TRUNCATE metering."UsageEvents"`)
	visible([2]string{"total_units", ""}, [2]string{"usage_by_account", "5"}, [2]string{"usage_by_plan", plan(5)},
		[2]string{"usage_by_region_day", region(9) + "/2026-11-02"})
}
