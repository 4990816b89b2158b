package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the counters a process keeps about its own consumers; nil when
// no registerer was given, and every method is safe on nil.
type metrics struct {
	appliedTotal *prometheus.CounterVec
	failureTotal *prometheus.CounterVec
	activeGauge  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	out := &metrics{
		appliedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashtam_projection_events_applied_total",
			Help: "Events this process applied to live read models.",
		}, []string{"projection"}),
		failureTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashtam_projection_batch_failures_total",
			Help: "Projection batches this process rolled back and retried.",
		}, []string{"projection"}),
		activeGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dashtam_projection_consuming",
			Help: "1 while this process holds the consumer lock of the projection.",
		}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{out.appliedTotal, out.failureTotal, out.activeGauge, &statusCollector{m: m}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *metrics) applied(name string, n int) {
	if m != nil {
		m.appliedTotal.WithLabelValues(name).Add(float64(n))
	}
}

func (m *metrics) failed(name string) {
	if m != nil {
		m.failureTotal.WithLabelValues(name).Inc()
	}
}

func (m *metrics) setActive(name string, on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.activeGauge.WithLabelValues(name).Set(v)
}

// scrapeMaxBehind caps the events-behind count a scrape makes, so that a
// projection far behind cannot push the scrape past its timeout.
const scrapeMaxBehind = 100_000

// statusCollector exports Status at scrape time: lag is a property of the
// database, not of this process, so every instance reports the same truth.
type statusCollector struct{ m *Manager }

var (
	behindDesc = prometheus.NewDesc("dashtam_projection_events_behind",
		"Committed events the projection has not applied yet.", []string{"projection"}, nil)
	lagDesc = prometheus.NewDesc("dashtam_projection_lag_seconds",
		"Age of the oldest event the projection has not applied yet; 0 when caught up.", []string{"projection"}, nil)
	ageDesc = prometheus.NewDesc("dashtam_projection_checkpoint_age_seconds",
		"Time since the projection's checkpoint last moved.", []string{"projection"}, nil)
	consumerDesc = prometheus.NewDesc("dashtam_projection_consumer_present",
		"1 when some process holds the projection's consumer lock.", []string{"projection"}, nil)
	staleDesc = prometheus.NewDesc("dashtam_projection_schema_stale",
		"1 when the live tables were built by a different schema than this binary's: rebuild.", []string{"projection"}, nil)
	parkedDesc = prometheus.NewDesc("dashtam_projection_parked_events",
		"Events the projection parked because it could not apply them; see `dashtam projections parked NAME`.", []string{"projection"}, nil)
)

// scrapeTimeout bounds the status query a scrape runs.
const scrapeTimeout = 2 * time.Second

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{behindDesc, lagDesc, ageDesc, consumerDesc, staleDesc, parkedDesc} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	statuses, err := c.m.StatusWithin(ctx, scrapeMaxBehind)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(behindDesc, err)
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, s := range statuses {
		ch <- prometheus.MustNewConstMetric(behindDesc, prometheus.GaugeValue, float64(s.Behind), s.Name)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, s.Lag.Seconds(), s.Name)
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, s.CheckpointAge.Seconds(), s.Name)
		ch <- prometheus.MustNewConstMetric(consumerDesc, prometheus.GaugeValue, b(s.ConsumerPresent), s.Name)
		ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, b(s.SchemaStale), s.Name)
		ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(s.Parked), s.Name)
	}
}
