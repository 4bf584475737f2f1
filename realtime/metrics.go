package realtime

import "github.com/prometheus/client_golang/prometheus"

// Metrics are a node's Prometheus metrics.
type Metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	framesIn      prometheus.Counter
	framesOut     prometheus.Counter
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	disconnects   *prometheus.CounterVec
	publications  prometheus.Counter
	resets        prometheus.Counter
	canvases      prometheus.Gauge
	opApply       prometheus.Histogram
	opPersist     prometheus.Histogram
}

// NewMetrics makes a node's metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	lat := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	m := &Metrics{
		connections:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "tone_realtime_connections", Help: "Open realtime connections."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tone_realtime_subscriptions", Help: "Live channel subscriptions."}),
		framesIn:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_frames_in_total", Help: "Frames received from clients."}),
		framesOut:     prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_frames_out_total", Help: "Frames sent to clients."}),
		bytesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_bytes_in_total", Help: "Message bytes received from clients."}),
		bytesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_bytes_out_total", Help: "Message bytes sent to clients."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tone_realtime_disconnects_total", Help: "Connections closed by the server, by close code."},
			[]string{"code"}),
		publications: prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_publications_total", Help: "Publications made through this node."}),
		resets:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_realtime_subscription_resets_total", Help: "Subscriptions told to resubscribe after a gap or epoch change."}),
		canvases:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "tone_realtime_canvases_loaded", Help: "Canvas documents held in memory."}),
		opApply:      prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tone_realtime_canvas_apply_seconds", Help: "Time to validate and apply a canvas update.", Buckets: lat}),
		opPersist:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tone_realtime_canvas_persist_seconds", Help: "Time from a canvas update's arrival to its durable write.", Buckets: lat}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.subscriptions, m.framesIn, m.framesOut, m.bytesIn, m.bytesOut,
			m.disconnects, m.publications, m.resets, m.canvases, m.opApply, m.opPersist)
	}
	return m
}
