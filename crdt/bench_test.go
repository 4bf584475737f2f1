package crdt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// Benchmarks for docs/benchmarks.md. Run them with
//
//	go test ./crdt/ -run '^$' -bench . -benchmem -count 5

// canvas builds a document of n rectangles with 10 properties each, made by
// replica 1, with coordinates like a drawing tool's (a quarter of them
// fractional).
func canvas(tb testing.TB, n int) *Doc {
	d := NewDoc(1, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	coord := func() Value {
		f := float64(rng.IntN(4000))
		if rng.IntN(4) == 0 {
			f += float64(rng.IntN(100)) / 100
		}
		return Number(f)
	}
	styles := []string{"solid", "dashed", "dotted"}
	for range n {
		_, _, err := d.Create("rect", Root, "", Props{
			"x": coord(), "y": coord(), "w": Number(float64(20 + rng.IntN(400))), "h": Number(float64(20 + rng.IntN(300))),
			"rotation": Number(float64(rng.IntN(4) * 90)), "opacity": Number(1),
			"fill": String(fmt.Sprintf("#%06x", rng.IntN(1<<24))), "stroke": String("#1e1e1e"),
			"strokeWidth": Number(float64(1 + rng.IntN(4))), "strokeStyle": String(styles[rng.IntN(3)]),
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	d.undo = nil
	return d
}

// remoteSets returns n single-property set updates made by replica 2 on
// elements of d, and d's version for them to apply on.
func remoteSets(tb testing.TB, d *Doc, n int) []*Update {
	ids := d.Children(Root)
	keys := []string{"x", "y", "w", "h"}
	out := make([]*Update, n)
	counter := d.clock
	for i := range out {
		counter++
		out[i] = &Update{Ops: []Op{{Kind: OpSet, ID: ID{Replica: 2, Seq: uint64(i + 1)}, Counter: counter,
			Elem: ids[i%len(ids)], Props: []Prop{{Key: keys[i%len(keys)], Value: Number(float64(i % 1000))}}}}}
	}
	return out
}

// BenchmarkApplyRemoteSet applies one remote property set per op, already
// decoded (ApplyUpdate) and from bytes (Apply), singly and in batches of
// 1000 sets per update.
func BenchmarkApplyRemoteSet(b *testing.B) {
	base := canvas(b, 1000)
	snap := base.Snapshot()
	load := func() *Doc {
		d, err := Load(1, nil, snap)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.Run("decoded", func(b *testing.B) {
		ups := remoteSets(b, base, b.N)
		d := load()
		b.ResetTimer()
		for i := range b.N {
			if err := d.ApplyUpdate(ups[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	})
	b.Run("bytes", func(b *testing.B) {
		ups := remoteSets(b, base, b.N)
		enc := make([][]byte, len(ups))
		for i, u := range ups {
			enc[i] = u.Encode()
		}
		d := load()
		b.ResetTimer()
		for i := range b.N {
			if err := d.Apply(enc[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	})
	b.Run("bytes-batch1000", func(b *testing.B) {
		ups := remoteSets(b, base, b.N)
		var enc [][]byte
		for i := 0; i < len(ups); i += 1000 {
			batch := &Update{}
			for _, u := range ups[i:min(i+1000, len(ups))] {
				batch.Ops = append(batch.Ops, u.Ops...)
			}
			enc = append(enc, batch.Encode())
		}
		d := load()
		b.ResetTimer()
		for _, e := range enc {
			if err := d.Apply(e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	})
}

// BenchmarkCanvas10k measures a 10,000-element canvas with 10 properties
// each: snapshot size, Load (decode and build) time, and the heap the loaded
// document holds per element.
func BenchmarkCanvas10k(b *testing.B) {
	const n = 10000
	snap := canvas(b, n).Snapshot()
	b.Run("load", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		for range b.N {
			if _, err := Load(1, nil, snap); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(snap)), "snapshot-bytes")
	})
	b.Run("heap", func(b *testing.B) {
		var docs []*Doc
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range b.N {
			d, err := Load(1, nil, snap)
			if err != nil {
				b.Fatal(err)
			}
			docs = append(docs, d)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N*n), "heap-B/elem")
		runtime.KeepAlive(docs)
	})
	b.Run("snapshot", func(b *testing.B) {
		d, err := Load(1, nil, snap)
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			_ = d.Snapshot()
		}
	})
}

// BenchmarkB3 runs the crdt-benchmarks B3 map workloads with N = 6000:
// floor(sqrt(N))*20 = 1540 replicas each set one key of the same map (here:
// the properties of one element every replica has) concurrently, and one
// document applies all their updates. As in crdt-benchmarks, the time is
// that of applying the 1540 updates to one document; making the edits is
// not timed. B3.1 sets a number, B3.2 an object (here: two properties in one
// op), B3.3 a string. Also reported: the total size of the updates, the
// size of the resulting snapshot, and the time to Load it.
func BenchmarkB3(b *testing.B) {
	clients := int(math.Sqrt(6000)) * 20
	for _, tc := range []struct {
		name  string
		props func(i int) Props
	}{
		{"B3.1-number", func(i int) Props { return Props{"x": Number(float64(i))} }},
		{"B3.2-object", func(i int) Props { return Props{"name": String("someone"), "x": Number(float64(i))} }},
		{"B3.3-string", func(i int) Props { return Props{"name": String(fmt.Sprintf("some string %d", i))} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			origin := NewDoc(1<<32, nil)
			frame, created, err := origin.Create("frame", Root, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			updates := make([][]byte, clients)
			size := 0
			for i := range clients {
				c := NewDoc(ReplicaID(i+1), nil)
				if err := c.Apply(created); err != nil {
					b.Fatal(err)
				}
				if updates[i], err = c.Set(frame, tc.props(i)); err != nil {
					b.Fatal(err)
				}
				size += len(updates[i])
			}
			var target *Doc
			for range b.N {
				b.StopTimer()
				target = NewDoc(1<<33, nil)
				if err := target.Apply(created); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for _, u := range updates {
					if err := target.Apply(u); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			snap := target.Snapshot()
			start := time.Now()
			if _, err := Load(1, nil, snap); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds()), "parse-ns")
			b.ReportMetric(float64(clients), "replicas")
			b.ReportMetric(float64(size), "update-bytes")
			b.ReportMetric(float64(len(snap)), "snapshot-bytes")
		})
	}
}

// BenchmarkB1Sets is a B1-style single-writer workload: one replica makes
// N = 6000 property sets (cycling over the properties of 100 elements) and a
// second replica applies each update as it comes.
func BenchmarkB1Sets(b *testing.B) {
	const n = 6000
	var size, updates int
	for range b.N {
		w, r := NewDoc(1, nil), NewDoc(2, nil)
		var ids []ID
		for range 100 {
			id, u, err := w.Create("rect", Root, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Apply(u); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		updates = 0
		keys := []string{"x", "y", "w", "h"}
		for i := range n {
			u, err := w.Set(ids[i%len(ids)], Props{keys[i%len(keys)]: Number(float64(i))})
			if err != nil {
				b.Fatal(err)
			}
			updates += len(u)
			if err := r.Apply(u); err != nil {
				b.Fatal(err)
			}
		}
		size = len(r.Snapshot())
	}
	b.ReportMetric(float64(updates), "update-bytes")
	b.ReportMetric(float64(size), "snapshot-bytes")
}

// BenchmarkDiffSince10k computes the update for a peer of a 10,000-element
// canvas that lacks 1% of the ops (the last 200 of 20,000: one create and
// one later set per element), and applies it.
func BenchmarkDiffSince10k(b *testing.B) {
	const n = 10000
	d := canvas(b, n)
	ids := d.Children(Root)
	for i, id := range ids {
		if i == n-n/50 {
			break
		}
		if _, err := d.Set(id, Props{"x": Number(float64(i))}); err != nil {
			b.Fatal(err)
		}
	}
	peer, err := Load(2, nil, d.Snapshot())
	if err != nil {
		b.Fatal(err)
	}
	for i := n - n/50; i < n; i++ {
		if _, err := d.Set(ids[i], Props{"x": Number(float64(i))}); err != nil {
			b.Fatal(err)
		}
	}
	v := peer.Version()
	b.Run("diff", func(b *testing.B) {
		var size int
		for range b.N {
			u, err := d.DiffSince(v)
			if err != nil {
				b.Fatal(err)
			}
			size = len(u)
		}
		b.ReportMetric(float64(size), "diff-bytes")
	})
	b.Run("diff+apply", func(b *testing.B) {
		u, err := d.DiffSince(v)
		if err != nil {
			b.Fatal(err)
		}
		snap := peer.Snapshot()
		for range b.N {
			b.StopTimer()
			p, err := Load(2, nil, snap)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			u, err = d.DiffSince(p.Version())
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Apply(u); err != nil {
				b.Fatal(err)
			}
		}
	})
}
