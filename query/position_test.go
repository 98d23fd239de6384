package query_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// whereRead is a job whose value says where it was computed, and what it saw there.
const whereRead = "SELECT pg_is_in_recovery() AS on_replica, count(*) AS orders FROM orders"

type readWhere struct {
	OnReplica bool  `json:"on_replica"`
	Orders    int64 `json:"orders"`
}

func decodeWhere(t *testing.T, row query.Row) readWhere {
	t.Helper()
	var w readWhere
	if err := json.Unmarshal([]byte(marshal(t, row.Value)), &w); err != nil {
		t.Fatal(err)
	}
	return w
}

const newOrder = "INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', 1, 1, 0, 1)"

// TestSnapshotsAtAPosition: with a streaming replica applying each commit a second late, a
// lookup at a write's position sees the write: on the replica when it replays the write within
// the wait, else on the primary; a stream (a warm run) reads the replica as it is; a position
// read from the primary after a commit is at or past it.
func TestSnapshotsAtAPosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	replica := testenv.ReplicaOf(t, dbURL)
	w := testenv.NewWriter(t, dbURL, 1)
	agg := userSQL(t, whereRead, "")
	patient := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 2, ReplicaURL: replica, ReplicaWait: 10 * time.Second})
	hasty := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 2, ReplicaURL: replica, ReplicaWait: 10 * time.Millisecond})

	before := w.Int("SELECT count(*) FROM orders")
	w.MustExec(newOrder)
	at, err := patient.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A stream takes the replica as it is: a second behind, it has not the order yet.
	streamed := map[string]query.Row{}
	if _, err := patient.Stream(ctx, agg, today, func(r query.Row) error { streamed[r.Key] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := decodeWhere(t, streamed[""]); !got.OnReplica {
		t.Errorf("a stream read %+v on the primary, want the replica", got)
	}

	row, err := hasty.Lookup(ctx, agg, today, "", at)
	if err != nil {
		t.Fatal(err)
	}
	// The primary's snapshots claim one less than the position read before them (query.DB.acquire).
	if got := decodeWhere(t, row); got.OnReplica || got.Orders != before+1 || row.Position < at-1 {
		t.Errorf("a lookup at %d waiting 10ms read %+v at %d, want the primary's %d orders at or past it, less one", at, got, row.Position, before+1)
	}
	replicaReads, _ := patient.ReplicaReads()
	row, err = patient.Lookup(ctx, agg, today, "", at)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeWhere(t, row); !got.OnReplica || got.Orders != before+1 || row.Position < at {
		t.Errorf("a lookup at %d waiting 10s read %+v at %d, want the replica's %d orders at or past it", at, got, row.Position, before+1)
	}
	if n, _ := patient.ReplicaReads(); n != replicaReads+1 {
		t.Errorf("the replica served %d snapshots for one lookup", n-replicaReads)
	}
	// Latest is the primary's, whatever the wait.
	row, err = patient.Lookup(ctx, agg, today, "", query.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeWhere(t, row); got.OnReplica {
		t.Errorf("a lookup of the latest read %+v on the replica", got)
	}
}

// TestReplicaDownLeftForThePrimary: a replica that stops answering (its connections refused)
// leaves every snapshot to the primary, answered without waiting for the replica, and takes
// snapshots again once it answers.
func TestReplicaDownLeftForThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	replica := testenv.ReplicaOf(t, dbURL)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, replica))
	agg := userSQL(t, whereRead, "")
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 2, ReplicaURL: proxy.Through(replica),
		ReplicaWait: 10 * time.Millisecond, ConnectTimeout: time.Second})

	where := func() bool {
		t.Helper()
		row, err := db.Lookup(ctx, agg, today, "", 0)
		if err != nil {
			t.Fatalf("with the replica down, a lookup failed: %v", err)
		}
		return decodeWhere(t, row).OnReplica
	}
	if !where() {
		t.Fatal("a lookup read the primary while the replica answered")
	}
	proxy.Down()
	for i := range 20 {
		if where() && i > 0 {
			t.Fatalf("lookup %d after the replica went down read the replica", i)
		}
	}
	proxy.Up()
	deadline := time.Now().Add(10 * time.Second)
	for !where() {
		if time.Now().After(deadline) {
			t.Fatal("the replica answers again, but lookups kept reading the primary for 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPositionsParse: positions read and write as PostgreSQL's LSNs.
func TestPositionsParse(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFF/FFFFFFFF"} {
		p, err := query.ParsePosition(s)
		if err != nil || query.FormatPosition(p) != s {
			t.Errorf("%s: read %d, %v, written back %s", s, p, err, query.FormatPosition(p))
		}
	}
	for _, s := range []string{"", "16", "x/1", "16/B374D848/1", "FFFFFFFF/FFFFFFFF"} {
		if _, err := query.ParsePosition(s); err == nil {
			t.Errorf("%q read as a position", s)
		}
	}
}
