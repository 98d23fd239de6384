package cache

import (
	"strconv"
	"testing"
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

// TestRunKeysWithin: a set is within another when the other holds each of its keys.
func TestRunKeysWithin(t *testing.T) {
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
	if !small.within(&large) || !empty.within(&small) || !large.within(&large) {
		t.Error("a subset is not within its set")
	}
	if large.within(&small) || small.within(&empty) {
		t.Error("a set is within one that lacks its keys")
	}
	small.Add("1000")
	small.sort()
	if small.within(&large) {
		t.Error("a set with a key past the other's last is within it")
	}
}
