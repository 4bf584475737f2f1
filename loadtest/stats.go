package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters and latency histograms of one worker, or of
// several merged. Workers send them to the parent as JSON.
type Stats struct {
	Conns      int64            `json:"conns"`                 // connections open when the run started
	DialErrors map[string]int64 `json:"dial_errors,omitempty"` // failed connects, by close code or reason
	Sent       int64            `json:"sent"`                  // canvas updates or publications sent
	Acked      int64            `json:"acked"`                 // of those, acknowledged with ok
	ErrReplies map[string]int64 `json:"err_replies,omitempty"` // err replies, by error code
	Deliveries int64            `json:"deliveries"`            // msg frames received from other clients
	Echoes     int64            `json:"echoes,omitempty"`      // canvas: own updates coming back
	Unmatched  int64            `json:"unmatched,omitempty"`   // msg frames that match no update sent in the run
	Missing    int64            `json:"missing,omitempty"`     // canvas: deliveries still expected after the drain
	Resets     int64            `json:"resets,omitempty"`      // reset frames
	ConnErrors int64            `json:"conn_errors,omitempty"` // err frames without an id
	// Disconnects are connections that ended before the run did, by the
	// close code the server sent (-1: no close frame).
	Disconnects map[string]int64 `json:"disconnects,omitempty"`
	CPUSeconds  float64          `json:"cpu_seconds"` // CPU time the worker used in the window and the drain
	Latency     *Histogram       `json:"latency"`     // end-to-end (canvas) or delivery (fanout)
	AckLatency  *Histogram       `json:"ack_latency"` // send to ok reply
}

// NewStats returns empty stats.
func NewStats() *Stats {
	return &Stats{Latency: NewHistogram(), AckLatency: NewHistogram()}
}

// Merge adds o to s.
func (s *Stats) Merge(o *Stats) {
	if o == nil {
		return
	}
	s.Conns += o.Conns
	s.Sent += o.Sent
	s.Acked += o.Acked
	s.Deliveries += o.Deliveries
	s.Echoes += o.Echoes
	s.Unmatched += o.Unmatched
	s.Missing += o.Missing
	s.Resets += o.Resets
	s.ConnErrors += o.ConnErrors
	s.CPUSeconds += o.CPUSeconds
	s.DialErrors = mergeCounts(s.DialErrors, o.DialErrors)
	s.ErrReplies = mergeCounts(s.ErrReplies, o.ErrReplies)
	s.Disconnects = mergeCounts(s.Disconnects, o.Disconnects)
	if s.Latency == nil {
		s.Latency = NewHistogram()
	}
	if s.AckLatency == nil {
		s.AckLatency = NewHistogram()
	}
	s.Latency.Merge(o.Latency)
	s.AckLatency.Merge(o.AckLatency)
}

func mergeCounts(a, b map[string]int64) map[string]int64 {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string]int64{}
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

// Errors returns the number of error events of every kind.
func (s *Stats) Errors() int64 {
	n := s.ConnErrors + s.Resets
	for _, m := range []map[string]int64{s.DialErrors, s.ErrReplies, s.Disconnects} {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// live holds a worker's counters while it runs; every method is safe for
// concurrent use.
type live struct {
	conns, sent, acked, deliveries, echoes, unmatched, missing, resets, connErrors atomic.Int64

	mu          sync.Mutex
	dialErrors  map[string]int64
	errReplies  map[string]int64
	disconnects map[string]int64

	// Latencies are recorded in shards, picked by connection, so that
	// thousands of reader goroutines do not all update the same counters.
	latency    [histShards]*Histogram
	window     [histShards]atomic.Pointer[Histogram] // latencies since the last progress report
	ackLatency *Histogram
}

const histShards = 16

func newLive() *live {
	l := &live{dialErrors: map[string]int64{}, errReplies: map[string]int64{}, disconnects: map[string]int64{},
		ackLatency: NewHistogram()}
	for i := range histShards {
		l.latency[i] = NewHistogram()
		l.window[i].Store(NewHistogram())
	}
	return l
}

func (l *live) count(m map[string]int64, k string) { l.add(m, k, 1) }

func (l *live) add(m map[string]int64, k string, n int64) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	m[k] += n
	l.mu.Unlock()
}

// observe records an end-to-end or delivery latency measured on
// connection conn.
func (l *live) observe(conn uint64, d time.Duration) {
	i := conn % histShards
	l.latency[i].Record(d)
	l.window[i].Load().Record(d)
}

// snapshot returns the counters and copies of the histograms.
func (l *live) snapshot() *Stats {
	s := NewStats()
	s.Conns, s.Sent, s.Acked = l.conns.Load(), l.sent.Load(), l.acked.Load()
	s.Deliveries, s.Echoes, s.Unmatched = l.deliveries.Load(), l.echoes.Load(), l.unmatched.Load()
	s.Missing, s.Resets, s.ConnErrors = l.missing.Load(), l.resets.Load(), l.connErrors.Load()
	l.mu.Lock()
	s.DialErrors = maps.Clone(l.dialErrors)
	s.ErrReplies = maps.Clone(l.errReplies)
	s.Disconnects = maps.Clone(l.disconnects)
	l.mu.Unlock()
	for _, h := range l.latency {
		s.Latency.Merge(h)
	}
	s.AckLatency.Merge(l.ackLatency)
	return s
}

// progress returns the cumulative counters with the latencies of the last
// window only, and starts a new window.
func (l *live) progress() *Stats {
	s := NewStats()
	s.Conns, s.Sent, s.Acked = l.conns.Load(), l.sent.Load(), l.acked.Load()
	s.Deliveries = l.deliveries.Load()
	s.Resets, s.ConnErrors = l.resets.Load(), l.connErrors.Load()
	l.mu.Lock()
	s.ErrReplies = maps.Clone(l.errReplies)
	s.Disconnects = maps.Clone(l.disconnects)
	s.DialErrors = maps.Clone(l.dialErrors)
	l.mu.Unlock()
	for i := range l.window {
		s.Latency.Merge(l.window[i].Swap(NewHistogram()))
	}
	return s
}

// Summary is the result of a load test, printed as JSON.
type Summary struct {
	Scenario string         `json:"scenario"`
	URL      string         `json:"url"`
	Started  time.Time      `json:"started"`
	Procs    int            `json:"procs"`
	Params   map[string]any `json:"params"`
	// Seconds is the length of the measured window: sending for canvas and
	// fanout, holding the connections for idle.
	Seconds     float64 `json:"seconds"`
	Connections int64   `json:"connections"`

	Sent             int64        `json:"sent"`
	Acked            int64        `json:"acked"`
	SentPerSec       float64      `json:"sent_per_s"`
	AckedPerSec      float64      `json:"acked_per_s"`
	Deliveries       int64        `json:"deliveries"`
	DeliveriesPerSec float64      `json:"deliveries_per_s"` // over the window and the drain
	Expected         int64        `json:"expected_deliveries,omitempty"`
	Latency          *Percentiles `json:"latency_ms,omitempty"`
	AckLatency       *Percentiles `json:"ack_latency_ms,omitempty"`

	Errors ErrorSummary `json:"errors"`
	// CPU is the CPU time the server and the load generator used from the
	// start of the window to the end of the drain.
	CPU    *CPUUsage    `json:"cpu,omitempty"`
	Server *ServerUsage `json:"server,omitempty"`
}

// CPUUsage is the CPU time used over a stretch of wall time.
type CPUUsage struct {
	WallSeconds      float64 `json:"wall_s"`
	ServerSeconds    float64 `json:"server_s"`
	ServerCores      float64 `json:"server_cores"`
	LoadgenSeconds   float64 `json:"loadgen_s"`
	LoadgenCores     float64 `json:"loadgen_cores"`
	ServerPerMessage float64 `json:"server_us_per_delivery,omitempty"` // server CPU microseconds per delivered message
}

func newCPUUsage(wall time.Duration, server, loadgen float64, deliveries int64) *CPUUsage {
	r := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	u := &CPUUsage{WallSeconds: r(wall.Seconds()), ServerSeconds: r(server), LoadgenSeconds: r(loadgen)}
	if wall > 0 {
		u.ServerCores, u.LoadgenCores = r(server/wall.Seconds()), r(loadgen/wall.Seconds())
	}
	if deliveries > 0 {
		u.ServerPerMessage = r(server / float64(deliveries) * 1e6)
	}
	return u
}

// ErrorSummary counts what went wrong.
type ErrorSummary struct {
	Total       int64            `json:"total"`
	Dial        map[string]int64 `json:"dial,omitempty"`
	ErrReplies  map[string]int64 `json:"err_replies,omitempty"`
	Disconnects map[string]int64 `json:"disconnects,omitempty"`
	Resets      int64            `json:"resets,omitempty"`
	ConnErrors  int64            `json:"conn_errors,omitempty"`
	Missing     int64            `json:"missing_deliveries,omitempty"`
	Unmatched   int64            `json:"unmatched,omitempty"`
}

// summarize turns merged stats into a summary: sends over the window of
// secs, deliveries over wall seconds (the window and the drain: under
// overload, deliveries go on after the last send).
func summarize(s *Stats, secs, wall float64) *Summary {
	per := func(n int64, secs float64) float64 {
		if secs <= 0 {
			return 0
		}
		return math.Round(float64(n)/secs*10) / 10
	}
	rate := func(n int64) float64 { return per(n, secs) }
	return &Summary{
		Seconds: math.Round(secs*1000) / 1000, Connections: s.Conns,
		Sent: s.Sent, Acked: s.Acked, SentPerSec: rate(s.Sent), AckedPerSec: rate(s.Acked),
		Deliveries: s.Deliveries, DeliveriesPerSec: per(s.Deliveries, max(wall, secs)),
		Latency: s.Latency.Percentiles(), AckLatency: s.AckLatency.Percentiles(),
		Errors: ErrorSummary{
			Total: s.Errors() + s.Missing, Dial: s.DialErrors, ErrReplies: s.ErrReplies, Disconnects: s.Disconnects,
			Resets: s.Resets, ConnErrors: s.ConnErrors, Missing: s.Missing, Unmatched: s.Unmatched,
		},
	}
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// progressLine formats one line of progress from the merged cumulative
// stats now and a second ago.
func progressLine(scenario string, elapsed time.Duration, phase string, cur, prev *Stats, dt time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %5.0fs conns=%d", scenario, phase, elapsed.Seconds(), cur.Conns)
	per := func(a, b int64) float64 { return float64(a-b) / dt.Seconds() }
	if prev != nil && dt > 0 {
		if cur.Sent > 0 || cur.Deliveries > 0 {
			fmt.Fprintf(&b, " sent/s=%.0f acked/s=%.0f deliv/s=%.0f", per(cur.Sent, prev.Sent), per(cur.Acked, prev.Acked), per(cur.Deliveries, prev.Deliveries))
		}
	}
	if cur.Latency != nil && cur.Latency.Count() > 0 {
		fmt.Fprintf(&b, " p50=%.2fms p99=%.2fms max=%.2fms", ms(cur.Latency.Quantile(.5)), ms(cur.Latency.Quantile(.99)), ms(cur.Latency.Max()))
	}
	if n := cur.Errors(); n > 0 {
		fmt.Fprintf(&b, " errors=%d", n)
		var parts []string
		for _, m := range []map[string]int64{cur.DialErrors, cur.ErrReplies, cur.Disconnects} {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(parts, " "))
		}
	}
	return b.String()
}

// WriteSummary writes s as indented JSON.
func WriteSummary(w io.Writer, s *Summary) error { return writeJSON(w, s) }
