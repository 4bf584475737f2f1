package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	ctx := context.Background()
	for _, test := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.2", true},
		{"ws://127.0.0.1:8080/api/v1/realtime", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.168.0.1", false},
		{"http://0.0.0.0:8080", false},
		{"http://[2001:db8::1]", false},
		{"http://example.com", false}, // refused whether it resolves or not
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:8080", false},
		{"http://", false},
	} {
		t.Run(test.url, func(t *testing.T) {
			err := CheckLoopback(ctx, test.url)
			if test.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
	assert.ErrorIs(t, CheckLoopback(ctx, "http://10.0.0.1:8080"), ErrNotLoopback)
	assert.ErrorIs(t, CheckLoopback(ctx, "http://example.com"), ErrNotLoopback)
}

func TestParseSourceIPs(t *testing.T) {
	ips, err := parseSourceIPs([]string{"127.0.0.1", " 127.0.0.2", "::1"})
	require.NoError(t, err)
	assert.Len(t, ips, 3)
	_, err = parseSourceIPs([]string{"127.0.0.1", "10.0.0.1"})
	assert.ErrorIs(t, err, ErrNotLoopback)
	_, err = parseSourceIPs([]string{"nope"})
	assert.Error(t, err)
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 257, 1000, 1 << 20, 1<<40 + 12345, 1<<64 - 1} {
		i := bucketOf(v)
		require.Less(t, i, numBuckets)
		assert.GreaterOrEqual(t, i, prev, "buckets grow with values")
		prev = i
		lo, hi := bucketRange(i)
		assert.LessOrEqual(t, lo, v)
		assert.GreaterOrEqual(t, hi, v)
		if v >= 256 {
			assert.LessOrEqual(t, float64(hi-lo)/float64(lo), 1.0/subCount, "precision at %d", v)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	assert.Zero(t, h.Quantile(.99))
	assert.Nil(t, h.Percentiles())
	// 1..10000 microseconds, in random order.
	vals := make([]time.Duration, 10000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Microsecond
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.Record(v)
	}
	assert.Equal(t, uint64(10000), h.Count())
	assert.Equal(t, time.Microsecond, h.Min())
	assert.Equal(t, 10*time.Millisecond, h.Max())
	assert.InDelta(t, 5000.5, float64(h.Mean())/1e3, 1)
	for q, want := range map[float64]time.Duration{.5: 5 * time.Millisecond, .95: 9500 * time.Microsecond, .99: 9900 * time.Microsecond, 1: 10 * time.Millisecond} {
		got := h.Quantile(q)
		assert.InEpsilon(t, float64(want), float64(got), 0.01, "q%v: got %s want %s", q, got, want)
	}
	p := h.Percentiles()
	assert.InEpsilon(t, 9.9, p.P99, 0.01)
	assert.Equal(t, 10.0, p.Max)

	h.Record(-time.Second)
	assert.Equal(t, time.Duration(0), h.Min(), "negative durations count as zero")
}

func TestHistogramMergeAndJSON(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 5000 {
		d := time.Duration(rand.ExpFloat64() * float64(time.Millisecond))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	// Through JSON, as workers send them.
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	b2 := NewHistogram()
	require.NoError(t, json.Unmarshal(raw, b2))
	a.Merge(b2)
	assert.Equal(t, all.Count(), a.Count())
	assert.Equal(t, all.Min(), a.Min())
	assert.Equal(t, all.Max(), a.Max())
	assert.Equal(t, all.Mean(), a.Mean())
	for _, q := range []float64{.5, .9, .99, .999} {
		assert.Equal(t, all.Quantile(q), a.Quantile(q))
	}
	empty := NewHistogram()
	raw, err = json.Marshal(empty)
	require.NoError(t, err)
	e2 := NewHistogram()
	require.NoError(t, json.Unmarshal(raw, e2))
	a.Merge(e2)
	assert.Equal(t, all.Min(), a.Min(), "an empty histogram merges as nothing")
}

func TestStatsMerge(t *testing.T) {
	s1, s2 := NewStats(), NewStats()
	s1.Conns, s1.Sent, s1.Acked, s1.Deliveries = 10, 100, 99, 900
	s1.ErrReplies = map[string]int64{"rate_limited": 1}
	s1.Disconnects = map[string]int64{"4002": 2}
	s1.Latency.Record(time.Millisecond)
	s2.Conns, s2.Sent, s2.Acked, s2.Deliveries, s2.Missing = 5, 50, 50, 450, 3
	s2.ErrReplies = map[string]int64{"rate_limited": 2, "invalid": 1}
	s2.DialErrors = map[string]int64{"4006": 4}
	s2.Latency.Record(3 * time.Millisecond)
	s2.AckLatency.Record(2 * time.Millisecond)

	// Through JSON, as the result lines of two workers.
	total := NewStats()
	for _, s := range []*Stats{s1, s2} {
		raw, err := json.Marshal(&message{Result: s})
		require.NoError(t, err)
		var m message
		require.NoError(t, json.Unmarshal(raw, &m))
		total.Merge(m.Result)
	}
	assert.Equal(t, int64(15), total.Conns)
	assert.Equal(t, int64(150), total.Sent)
	assert.Equal(t, int64(149), total.Acked)
	assert.Equal(t, int64(1350), total.Deliveries)
	assert.Equal(t, int64(3), total.Missing)
	assert.Equal(t, map[string]int64{"rate_limited": 3, "invalid": 1}, total.ErrReplies)
	assert.Equal(t, map[string]int64{"4002": 2}, total.Disconnects)
	assert.Equal(t, map[string]int64{"4006": 4}, total.DialErrors)
	assert.Equal(t, int64(3+1+2+4), total.Errors())
	assert.Equal(t, uint64(2), total.Latency.Count())
	assert.Equal(t, 3*time.Millisecond, total.Latency.Max())
	assert.Equal(t, uint64(1), total.AckLatency.Count())

	sum := summarize(total, 10, 9)
	assert.Equal(t, 15.0, sum.SentPerSec)
	assert.Equal(t, 135.0, sum.DeliveriesPerSec)
	assert.Equal(t, int64(13), sum.Errors.Total, "errors and missing deliveries")
	assert.Equal(t, 3.0, sum.Latency.Max)
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 1018
go_memstats_heap_inuse_bytes 2.72121856e+08
process_resident_memory_bytes 3.48131328e+08
tone_realtime_connections 1000
tone_realtime_disconnects_total{code="4002"} 3
http_requests 12 1700000000000
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	require.NoError(t, err)
	assert.Equal(t, 1018.0, m["go_goroutines"])
	assert.Equal(t, 272121856.0, m["go_memstats_heap_inuse_bytes"])
	assert.Equal(t, 1000.0, m["tone_realtime_connections"])
	assert.Equal(t, 12.0, m["http_requests"])
	_, labelled := m[`tone_realtime_disconnects_total{code="4002"}`]
	assert.False(t, labelled)
}

func TestServerUsage(t *testing.T) {
	before := ServerReading{RSSBytes: 100e6, HeapInuse: 50e6, Goroutines: 20}
	mid := ServerReading{RSSBytes: 110e6, HeapInuse: 55e6, Goroutines: 1020, Connections: 1000}
	after := ServerReading{RSSBytes: 120e6, HeapInuse: 60e6, Goroutines: 2020, Connections: 2000}
	u := newServerUsage(before, mid, after, 2000)
	assert.Equal(t, PerConn{RSSBytes: 10000, HeapInuseBytes: 5000, Goroutines: 1}, u.PerConn)
	assert.Equal(t, PerConn{RSSBytes: 10000, HeapInuseBytes: 5000, Goroutines: 1}, u.Marginal)
	assert.True(t, u.ConnectionsMatch)
	assert.False(t, newServerUsage(before, mid, after, 1999).ConnectionsMatch)
}

func TestMakePlans(t *testing.T) {
	fx := &fixture{Project: "p", Canvases: []string{"c0", "c1", "c2", "c3", "c4"}}
	for i := range 7 {
		fx.Users = append(fx.Users, &account{Token: string(rune('a' + i))})
	}
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Editors, cfg.Canvases, cfg.Procs = "canvas", 23, 5, 2
	require.NoError(t, cfg.check())
	plans := makePlans(&cfg, fx)
	require.Len(t, plans, 2)
	seen := map[string]int{}
	editors := 0
	for _, p := range plans {
		assert.Equal(t, "ws://127.0.0.1:8080/api/v1/realtime", p.WSURL)
		for _, c := range p.Canvases {
			seen[c.ID]++
			editors += len(c.Editors)
			for _, e := range c.Editors {
				assert.GreaterOrEqual(t, e.Replica, uint64(1)<<32)
				assert.Less(t, e.Replica, uint64(1)<<53)
			}
		}
	}
	assert.Equal(t, 23, editors)
	assert.Len(t, seen, 5, "every canvas is in exactly one worker")
	for _, n := range seen {
		assert.Equal(t, 1, n)
	}

	cfg = DefaultConfig()
	cfg.Scenario, cfg.Subscribers, cfg.Rate, cfg.Procs = "fanout", 11, 1000, 3
	require.NoError(t, cfg.check())
	assert.Equal(t, 13, cfg.Publishers, "under 80 commands per second per connection")
	plans = makePlans(&cfg, fx)
	subs := 0
	for _, p := range plans {
		subs += len(p.Subscribers)
		assert.Equal(t, "project:p", p.Channel)
	}
	assert.Equal(t, 11, subs)
	assert.Len(t, plans[0].Publishers, 13)
	assert.Contains(t, cfg.ServerFlags(), "--max-connections-per-user 64")

	cfg = DefaultConfig()
	cfg.Scenario, cfg.Conns, cfg.Procs, cfg.Users = "idle", 19000, 2, 100
	require.NoError(t, cfg.check())
	plans = makePlans(&cfg, fx)
	assert.Len(t, plans[0].Idle, 4750)
	assert.Len(t, plans[0].IdleLater, 4750)
	assert.Contains(t, cfg.ServerFlags(), "--max-connections-per-user 190")
}

func TestConfigCheck(t *testing.T) {
	for _, test := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no scenario", func(c *Config) {}, "unknown scenario"},
		{"no duration", func(c *Config) { c.Scenario, c.Duration = "canvas", 0 }, "--duration"},
		{"no editors", func(c *Config) { c.Scenario, c.Editors = "canvas", 0 }, "--editors"},
		{"settle too long", func(c *Config) { c.Scenario, c.Settle = "idle", time.Hour }, "--settle"},
	} {
		t.Run(test.name, func(t *testing.T) {
			cfg := DefaultConfig()
			test.mod(&cfg)
			err := cfg.check()
			require.Error(t, err)
			assert.Contains(t, err.Error(), test.want)
		})
	}
	assert.True(t, slices.Contains(Scenarios, "idle"))
}
