package jobs

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autofloss/autofloss/esp"
)

// Metrics are the pipeline's Prometheus series, registered on a registry the caller passes in (never the
// global one). Labels carry task types, outcomes, reasons, platforms and HTTP statuses: never ids,
// addresses or credentials.
type Metrics struct {
	tasks           *prometheus.CounterVec   // type, outcome
	taskSeconds     *prometheus.HistogramVec // type
	contacts        *prometheus.CounterVec   // reason, verdict
	contactsSkipped prometheus.Counter
	writebacks      *prometheus.CounterVec // action
	platform        *prometheus.CounterVec // platform, status
	credits         prometheus.Counter
	enqueued        *prometheus.CounterVec // source (scheduler, webhook), outcome
}

// NewMetrics registers the pipeline's series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autofloss_tasks_total",
			Help: "Tasks handled, by type and outcome."}, []string{"type", "outcome"}),
		taskSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "autofloss_task_duration_seconds",
			Help: "Task handling time.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"type"}),
		contacts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autofloss_contacts_total",
			Help: "Contact results committed, by reason and verdict."}, []string{"reason", "verdict"}),
		contactsSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "autofloss_contacts_skipped_total",
			Help: "Contacts not cleaned because the platform reports them unsubscribed."}),
		writebacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autofloss_writebacks_total",
			Help: "Write-backs applied on platforms, by action."}, []string{"action"}),
		platform: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autofloss_platform_requests_total",
			Help: "HTTP attempts to email platforms, by platform and status (0 = no answer)."}, []string{"platform", "status"}),
		credits: prometheus.NewCounter(prometheus.CounterOpts{Name: "autofloss_credits_spent_total",
			Help: "Verification credits debited."}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autofloss_enqueued_total",
			Help: "Tasks offered to the queue, by source and outcome (enqueued, duplicate)."}, []string{"source", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.tasks, m.taskSeconds, m.contacts, m.contactsSkipped, m.writebacks, m.platform, m.credits, m.enqueued} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observer feeds platform requests by status into the metrics (esp.ClientOptions.Observer).
func (m *Metrics) Observer() esp.Observer {
	return esp.ObserverFunc(func(platform string, status int, _ time.Duration) {
		m.platform.WithLabelValues(platform, strconv.Itoa(status)).Inc()
	})
}

func (m *Metrics) task(typ, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.tasks.WithLabelValues(typ, outcome).Inc()
	m.taskSeconds.WithLabelValues(typ).Observe(d.Seconds())
}

func (m *Metrics) enqueue(source, outcome string) {
	if m == nil {
		return
	}
	m.enqueued.WithLabelValues(source, outcome).Inc()
}
