package warm

import (
	"testing"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
)

// TestRunsFitTheTouchedWindow: a run may last jobs.MaxTimeout, and the single-key writes made
// meanwhile must be remembered that long for the run to step around them.
func TestRunsFitTheTouchedWindow(t *testing.T) {
	t.Parallel()
	if jobs.MaxTimeout > cache.TouchedWindow {
		t.Errorf("a run may take %s, but Redis remembers single-key writes for %s", jobs.MaxTimeout, cache.TouchedWindow)
	}
}
