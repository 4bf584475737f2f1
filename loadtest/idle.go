package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tone-ai/tone/realtime"
)

// idleWorker holds authenticated connections that do nothing but answer
// the server's pings (rtclient does that).
type idleWorker struct{ w *worker }

func (iw *idleWorker) prepare(ctx context.Context) error {
	p := iw.w.plan
	iw.w.forEach(ctx, len(p.Idle), func(i int) { iw.w.dial(ctx, p.Tokens[p.Idle[i]], iw.onPush) })
	return ctx.Err()
}

func (iw *idleWorker) onPush(f *realtime.Frame) { iw.w.handleCommon(f) }

// run opens the plan's later connections (the second step of the
// measurement), then holds every connection until stop.
func (iw *idleWorker) run(ctx context.Context, stop <-chan struct{}) {
	p := iw.w.plan
	iw.w.forEach(ctx, len(p.IdleLater), func(i int) { iw.w.dial(ctx, p.Tokens[p.IdleLater[i]], iw.onPush) })
	select {
	case <-stop:
	case <-ctx.Done():
	}
}

func (iw *idleWorker) drain(context.Context) {}

// ServerReading is what the server's /metrics said at one moment.
type ServerReading struct {
	At          time.Time `json:"at"`
	RSSBytes    float64   `json:"rss_bytes"`
	HeapInuse   float64   `json:"heap_inuse_bytes"`
	StackInuse  float64   `json:"stack_inuse_bytes"`
	Goroutines  float64   `json:"goroutines"`
	Connections float64   `json:"connections"`
	GCs         float64   `json:"gcs"`         // garbage collections so far
	CPUSeconds  float64   `json:"cpu_seconds"` // CPU time used so far
	OpenFDs     float64   `json:"open_fds"`
	MaxFDs      float64   `json:"max_fds"`
}

// ServerUsage compares the server before the connections opened, with
// half of them open (Mid), and with all of them open (After).
type ServerUsage struct {
	Before ServerReading `json:"before"`
	Mid    ServerReading `json:"mid"`
	After  ServerReading `json:"after"`
	// PerConn is the growth from Before to After divided by the
	// connections. It includes whatever else changed since Before: the
	// garbage of the setup's password hashing still in the heap before the
	// next collection, the runtime's own growth.
	PerConn PerConn `json:"per_conn"`
	// Marginal is the growth from Mid to After divided by the connections
	// opened in between: the cost of one more connection, with the
	// server's fixed costs and the setup's garbage out of the picture.
	Marginal PerConn `json:"marginal_per_conn"`
	// ConnectionsMatch is whether tone_realtime_connections grew by exactly
	// the connections the load test holds.
	ConnectionsMatch bool `json:"connections_match"`
}

// PerConn is the server's growth per connection.
type PerConn struct {
	RSSBytes        float64 `json:"rss_bytes"`
	HeapInuseBytes  float64 `json:"heap_inuse_bytes"`
	StackInuseBytes float64 `json:"stack_inuse_bytes"`
	Goroutines      float64 `json:"goroutines"`
}

func perConn(from, to ServerReading, conns float64) PerConn {
	if conns <= 0 {
		return PerConn{}
	}
	per := func(a, b float64) float64 { return math.Round((a-b)/conns*10) / 10 }
	return PerConn{per(to.RSSBytes, from.RSSBytes), per(to.HeapInuse, from.HeapInuse),
		per(to.StackInuse, from.StackInuse), per(to.Goroutines, from.Goroutines)}
}

func newServerUsage(before, mid, after ServerReading, conns int64) *ServerUsage {
	return &ServerUsage{
		Before: before, Mid: mid, After: after,
		PerConn:          perConn(before, after, float64(conns)),
		Marginal:         perConn(mid, after, after.Connections-mid.Connections),
		ConnectionsMatch: after.Connections-before.Connections == float64(conns),
	}
}

// waitGC waits, at most max, for the server's next garbage collection, so
// that the reading after it finds no garbage in the Go heap. An idle Go
// program collects at least every two minutes. It returns whether a
// collection happened.
func waitGC(ctx context.Context, c *restClient, max time.Duration) (bool, error) {
	first, err := readMetricsOnce(ctx, c)
	if err != nil {
		return false, err
	}
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		r, err := readMetricsOnce(ctx, c)
		if err != nil {
			return false, err
		}
		if r.GCs > first.GCs {
			return true, nil
		}
	}
	return false, nil
}

// readMetrics reads the server's Prometheus metrics: a few readings a
// short while apart, keeping the median of each value (the Go heap moves
// with every collection).
func readMetrics(ctx context.Context, c *restClient, n int) (ServerReading, error) {
	var rs []ServerReading
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ServerReading{}, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		r, err := readMetricsOnce(ctx, c)
		if err != nil {
			return ServerReading{}, err
		}
		rs = append(rs, r)
	}
	med := func(f func(ServerReading) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return ServerReading{
		At:          rs[len(rs)-1].At,
		RSSBytes:    med(func(r ServerReading) float64 { return r.RSSBytes }),
		HeapInuse:   med(func(r ServerReading) float64 { return r.HeapInuse }),
		StackInuse:  med(func(r ServerReading) float64 { return r.StackInuse }),
		Goroutines:  med(func(r ServerReading) float64 { return r.Goroutines }),
		GCs:         rs[len(rs)-1].GCs,
		CPUSeconds:  rs[len(rs)-1].CPUSeconds,
		Connections: med(func(r ServerReading) float64 { return r.Connections }),
		OpenFDs:     med(func(r ServerReading) float64 { return r.OpenFDs }),
		MaxFDs:      rs[0].MaxFDs,
	}, nil
}

func readMetricsOnce(ctx context.Context, c *restClient) (ServerReading, error) {
	req, err := newGet(ctx, c.base+"/metrics")
	if err != nil {
		return ServerReading{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ServerReading{}, fmt.Errorf("reading /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ServerReading{}, fmt.Errorf("reading /metrics: HTTP %d", resp.StatusCode)
	}
	m, err := parseMetrics(bufio.NewScanner(resp.Body))
	if err != nil {
		return ServerReading{}, err
	}
	r := ServerReading{At: time.Now()}
	for name, dst := range map[string]*float64{
		"process_resident_memory_bytes": &r.RSSBytes,
		"go_memstats_heap_inuse_bytes":  &r.HeapInuse,
		"go_memstats_stack_inuse_bytes": &r.StackInuse,
		"go_goroutines":                 &r.Goroutines,
		"go_gc_duration_seconds_count":  &r.GCs,
		"process_cpu_seconds_total":     &r.CPUSeconds,
		"tone_realtime_connections":     &r.Connections,
		"process_open_fds":              &r.OpenFDs,
		"process_max_fds":               &r.MaxFDs,
	} {
		v, ok := m[name]
		if !ok && !strings.HasPrefix(name, "process_") && name != "go_memstats_stack_inuse_bytes" && name != "go_gc_duration_seconds_count" {
			return ServerReading{}, fmt.Errorf("reading /metrics: no %s", name)
		}
		*dst = v
	}
	return r, nil
}

// parseMetrics reads the unlabelled samples of a Prometheus text
// exposition.
func parseMetrics(s *bufio.Scanner) (map[string]float64, error) {
	s.Buffer(make([]byte, 64<<10), 1<<20)
	out := map[string]float64{}
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.ContainsRune(name, '{') {
			continue
		}
		if i := strings.IndexByte(val, ' '); i >= 0 {
			val = val[:i] // a timestamp follows
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		out[name] = f
	}
	return out, s.Err()
}
