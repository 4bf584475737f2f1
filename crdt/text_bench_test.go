package crdt

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// textCPU returns the CPU time (user + system) the process has used so far.
// Benchmarks report it per op beside the wall time, because the machine is
// shared and wall time swings with other people's load; CPU time includes
// the garbage collector's background work.
func textCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// textCPUMeter accumulates CPU time over the timed parts of a benchmark.
type textCPUMeter struct {
	tb    testing.TB
	start time.Duration
	total time.Duration
}

func (m *textCPUMeter) begin() { m.start = textCPU(m.tb) }
func (m *textCPUMeter) end()   { m.total += textCPU(m.tb) - m.start }

// report adds the cpu-ns/op metric.
func (m *textCPUMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// Benchmarks on the real editing traces; docs/benchmarks.md quotes them.
//
//	go test -run '^$' -bench 'BenchmarkText' -benchtime 10x -count 5 ./crdt/

// BenchmarkTextAutomergePaperReplay replays the 259,778 edits of
// automerge-paper one by one on one replica. It reports the heap held by the
// text afterwards and the size of its encoded state, raw and after Collect.
func BenchmarkTextAutomergePaperReplay(b *testing.B) {
	tr := textLoadTrace(b, "automerge-paper")
	var heap uint64
	var r *TextReplica
	cpu := &textCPUMeter{tb: b}
	b.StopTimer()
	for range b.N {
		r = nil
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		cpu.begin()
		r = textReplaySeq(b, tr)
		cpu.end()
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(r)
	}
	if r.String() != tr.EndContent {
		b.Fatal("wrong content")
	}
	enc, err := r.Encode()
	if err != nil {
		b.Fatal(err)
	}
	r.Collect(r.Version())
	gc, err := r.Encode()
	if err != nil {
		b.Fatal(err)
	}
	cpu.report(b)
	b.ReportMetric(float64(heap), "heap-B")
	b.ReportMetric(float64(len(enc)), "state-B")
	b.ReportMetric(float64(len(gc)), "collected-state-B")
}

// textPaperState returns the encoded automerge-paper state, collected or not.
func textPaperState(b *testing.B, collect bool) []byte {
	r := textReplaySeq(b, textLoadTrace(b, "automerge-paper"))
	if collect {
		r.Collect(r.Version())
	}
	enc, err := r.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

// BenchmarkTextAutomergePaperLoad decodes the encoded final state.
func BenchmarkTextAutomergePaperLoad(b *testing.B) {
	for _, c := range []struct {
		name    string
		collect bool
	}{{"raw", false}, {"collected", true}} {
		b.Run(c.name, func(b *testing.B) {
			enc := textPaperState(b, c.collect)
			b.SetBytes(int64(len(enc)))
			cpu := &textCPUMeter{tb: b}
			cpu.begin()
			for b.Loop() {
				if _, err := TextDecode(enc); err != nil {
					b.Fatal(err)
				}
			}
			cpu.end()
			cpu.report(b)
		})
	}
}

// BenchmarkTextAutomergePaperRemote applies the whole trace to an empty
// replica as one remote update: DiffSince(nothing) of the replayed text,
// encoded, then decoded and applied.
func BenchmarkTextAutomergePaperRemote(b *testing.B) {
	r := textReplaySeq(b, textLoadTrace(b, "automerge-paper"))
	upd, err := TextEncodeOps(r.DiffSince(nil))
	if err != nil {
		b.Fatal(err)
	}
	want := r.String()
	cpu := &textCPUMeter{tb: b}
	cpu.begin()
	defer func() {
		cpu.end()
		cpu.report(b)
		b.ReportMetric(float64(len(upd)), "update-B")
	}()
	for b.Loop() {
		ops, err := TextDecodeOps(upd)
		if err != nil {
			b.Fatal(err)
		}
		t := new(Text)
		if err := t.Apply(ops...); err != nil {
			b.Fatal(err)
		}
		if t.Len() != len([]rune(want)) {
			b.Fatal("wrong length")
		}
	}
}

// BenchmarkTextAutomergePaperOps applies the 259,778 individual ops of the
// trace, as a replica receiving them one message at a time would.
func BenchmarkTextAutomergePaperOps(b *testing.B) {
	tr := textLoadTrace(b, "automerge-paper")
	var ops []TextOp
	r := new(Text).EditAs(1)
	for i := range tr.Txns {
		for _, p := range tr.Txns[i].Patches {
			if p.Del > 0 {
				op, _ := r.Delete(p.Pos, p.Del)
				ops = append(ops, op)
			}
			if p.Ins != "" {
				op, _ := r.Insert(p.Pos, p.Ins)
				ops = append(ops, op)
			}
		}
	}
	cpu := &textCPUMeter{tb: b}
	cpu.begin()
	defer func() { cpu.end(); cpu.report(b) }()
	for b.Loop() {
		t := new(Text)
		for i := range ops {
			if err := t.Apply(ops[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTextConcurrentMerge merges the op logs of every agent of a
// concurrent trace into an empty replica and reports the final state size.
func BenchmarkTextConcurrentMerge(b *testing.B) {
	for _, name := range []string{"friendsforever", "clownschool"} {
		b.Run(name, func(b *testing.B) {
			tr := textLoadTrace(b, name)
			_, ops := textReplayConcurrent(b, tr)
			var t *Text
			cpu := &textCPUMeter{tb: b}
			cpu.begin()
			for b.Loop() {
				t = new(Text)
				for a := range ops {
					if err := t.Apply(ops[a]...); err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu.end()
			cpu.report(b)
			if t.String() != tr.EndContent {
				b.Fatal("wrong content")
			}
			enc, _ := t.Encode()
			t.Collect(t.Version())
			gc, _ := t.Encode()
			b.ReportMetric(float64(len(enc)), "state-B")
			b.ReportMetric(float64(len(gc)), "collected-state-B")
		})
	}
}
