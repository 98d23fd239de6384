package cli

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
)

// jobsFileEvery is how often a process announces its jobs file and compares it with the others';
// an announcement older than three times that is of a process gone.
const jobsFileEvery = 20 * time.Second

// JobsFiles announces the digest of the jobs file this process loaded to the other apis and
// warmers of the namespace, and warns when one of them runs with another: an api and a warmer
// loaded with different files serve and warm different jobs, and nothing else would say so. The
// warning is a log line (jobs_file_differs) when the processes start to differ, and the gauge
// warmcache_jobs_file_differs while they do.
type JobsFiles struct {
	store   *cache.Store
	logger  *slog.Logger
	process string // binary/host/pid/random: several may share a host and a pid (containers, tests)
	digest  string
	differs prometheus.Gauge
	warned  bool
}

// NewJobsFiles returns the announcer of binary (api or warmer), which loaded the jobs file of
// digest (Cache.JobsDigest); its gauge is registered on reg.
func NewJobsFiles(store *cache.Store, logger *slog.Logger, reg prometheus.Registerer, binary, digest string) *JobsFiles {
	host, _ := os.Hostname()
	j := &JobsFiles{store: store, logger: logger, process: fmt.Sprintf("%s/%s/%d/%x", binary, host, os.Getpid(), rand.Uint32()),
		digest: digest, differs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warmcache_jobs_file_differs",
			Help: "1 while another api or warmer of the namespace runs with a jobs file other than this process's."})}
	reg.MustRegister(j.differs)
	return j
}

// Check announces the jobs file and compares it with the others' once: a binary does so at
// start, before it says it started. It takes a second at most: with Redis down, a start waits
// for no more than that, and the next check says.
func (j *JobsFiles) Check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	digests, err := j.store.AnnounceJobsFile(ctx, j.process, j.digest, time.Now(), 3*jobsFileEvery)
	if err != nil {
		return // Redis unavailable: the next check says
	}
	var others []string
	for _, p := range slices.Sorted(maps.Keys(digests)) {
		if digests[p] != j.digest {
			others = append(others, p+"="+digests[p])
		}
	}
	if len(others) > 0 && !j.warned {
		j.logger.Warn("jobs_file_differs", "digest", j.digest, "others", others,
			"hint", "give every api and warmer of the namespace the same jobs file")
	}
	j.warned = len(others) > 0
	if j.warned {
		j.differs.Set(1)
	} else {
		j.differs.Set(0)
	}
}

// Watch checks every jobsFileEvery until ctx ends.
func (j *JobsFiles) Watch(ctx context.Context) {
	ticker := time.NewTicker(jobsFileEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			j.Check(ctx)
		}
	}
}
