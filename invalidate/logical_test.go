package invalidate

import (
	"testing"
	"time"

	"github.com/warmcache/warmcache/query"
)

// TestLogicalCapture: with CHANGE_CAPTURE=logical no warmcache trigger is left on users' tables,
// and every kind of write, through the api or straight in SQL (an insert, an order moved to
// another customer, a delete, a change of a customer's card, a TRUNCATE), shows within a second,
// as a HIT, every key it touches: two captures stand by each other, one streaming the slot.
func TestLogicalCapture(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, captures: 2, capture: query.CaptureLogical, scheduler: true})
	if n := s.triggersOnUsersTables(); n != 0 {
		t.Fatalf("%d warmcache triggers on users' tables with logical decoding, want none", n)
	}
	s.awaitStreaming(30 * time.Second) // a write before would wait in the slot meanwhile
	s.post(3)
	s.waitVisible(3, time.Second)
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', 4, 1, 0, 1)")
	s.waitVisible(4, time.Second)
	s.exec("UPDATE orders SET customerid = 5 WHERE orderid = (SELECT max(orderid) FROM orders WHERE customerid = 4)")
	s.waitVisible(4, time.Second)
	s.waitVisible(5, time.Second)
	s.exec("DELETE FROM orders WHERE orderid = (SELECT max(orderid) FROM orders WHERE customerid = 5)")
	s.waitVisible(5, time.Second)
	s.exec("UPDATE customers SET creditcardexpiration = '2001/01' WHERE customerid = 6")
	s.waitVisible(6, time.Second)
	s.exec("TRUNCATE orders CASCADE")
	s.waitVisible(3, 3*time.Second) // through a run of each keyed job (20,000 keys each), as with triggers
}

// awaitStreaming waits until a capture streams the database's slot.
func (s *system) awaitStreaming(within time.Duration) {
	s.t.Helper()
	s.awaitCount("captures streaming the slot",
		"SELECT count(*) AS n FROM pg_replication_slots WHERE database = current_database() AND active", 1, within)
}

// triggersOnUsersTables counts warmcache's triggers on tables outside its schema.
func (s *system) triggersOnUsersTables() int64 {
	s.t.Helper()
	return s.count(`SELECT count(*) AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		WHERE t.tgname LIKE 'warmcache%' AND c.relnamespace <> 'warmcache'::regnamespace`)
}
