package cache

import (
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestRunKeys: a set of a run's keys holds every key added, in any order, and no other; the
// empty set and a nil one hold none.
func TestRunKeys(t *testing.T) {
	var held RunKeys
	held.sort()
	if held.has("1") {
		t.Error("the empty set holds a key")
	}
	var none *RunKeys
	none.sort()
	if none.has("1") {
		t.Error("a nil set holds a key")
	}
	for i := 100_000; i > 0; i-- {
		held.Add(strconv.Itoa(i))
	}
	held.sort()
	for i := 1; i <= 100_000; i++ {
		if !held.has(strconv.Itoa(i)) {
			t.Fatalf("key %d added, not held", i)
		}
		if held.has("other" + strconv.Itoa(i)) {
			t.Fatalf("key other%d held, never added", i)
		}
	}
	held.Add("late")
	held.sort()
	if !held.has("late") || !held.has("1") || held.Len() != 100_001 {
		t.Errorf("after a key added late: late %v, 1 %v, %d keys", held.has("late"), held.has("1"), held.Len())
	}
}

// TestRunKeysHoldsAll: a set holds all of some hashes when it holds each of them.
func TestRunKeysHoldsAll(t *testing.T) {
	var small, large, empty RunKeys
	for i := range 1000 {
		large.Add(strconv.Itoa(i))
		if i%7 == 0 {
			small.Add(strconv.Itoa(i))
		}
	}
	small.sort()
	large.sort()
	empty.sort()
	if !large.holdsAll(small.hashes) || !small.holdsAll(empty.hashes) || !large.holdsAll(large.hashes) {
		t.Error("a set does not hold the hashes of a subset")
	}
	if small.holdsAll(large.hashes) || empty.holdsAll(small.hashes) {
		t.Error("a set holds hashes it lacks")
	}
	// A key whose hash is past the last of large's.
	past := ""
	for i := 0; past == ""; i++ {
		if k := "past" + strconv.Itoa(i); xxhash.Sum64String(k) > large.hashes[len(large.hashes)-1] {
			past = k
		}
	}
	small.Add(past)
	small.sort()
	if large.holdsAll(small.hashes) {
		t.Error("a set holds a hash past its last")
	}
}
