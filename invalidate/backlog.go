package invalidate

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/query"
)

// backlogTimeout bounds measuring the outbox at a scrape, well within Prometheus's default
// scrape timeout (10 s).
const backlogTimeout = 2 * time.Second

// backlogCollector measures the outbox when Prometheus scrapes: its rows and the age of the
// oldest, one indexed query (count and min over a table the relays keep near empty). Rows that
// stay and age are changes no relay publishes: no warmer runs, or Redis refuses them. While
// PostgreSQL does not answer it reports nothing, rather than fail the whole scrape.
type backlogCollector struct {
	db           *query.DB
	rows, oldest *prometheus.Desc
}

var _ prometheus.Collector = backlogCollector{}

func newBacklogCollector(db *query.DB) backlogCollector {
	return backlogCollector{
		db: db,
		rows: prometheus.NewDesc("warmcache_outbox_rows",
			"Changes recorded in the outbox and not yet published to Redis.", nil, nil),
		oldest: prometheus.NewDesc("warmcache_outbox_oldest_age_seconds",
			"Age of the oldest change waiting in the outbox (0 when it is empty).", nil, nil),
	}
}

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rows
	ch <- c.oldest
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	b, err := c.db.Outbox().Backlog(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(b.Rows))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, b.Oldest.Seconds())
}
