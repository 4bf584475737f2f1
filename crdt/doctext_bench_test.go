package crdt

import (
	"runtime"
	"testing"
)

// Benchmarks of text inside the canvas document on the automerge-paper
// trace; docs/benchmarks.md quotes them.
//
//	go test -run '^$' -bench 'BenchmarkDocText' -benchtime 10x -count 6 ./crdt/

// docTextReplay replays a sequential trace through Doc.InsertText and
// Doc.DeleteText into the content of one sticky note, and returns the
// document, the note, and every update it produced (if keep) or their
// total size.
func docTextReplay(tb testing.TB, tr *textTrace, keep bool) (*Doc, ID, [][]byte, int) {
	tb.Helper()
	d := NewDoc(1, nil)
	var updates [][]byte
	if keep {
		updates = make([][]byte, 0, 2*len(tr.Txns)+2)
	}
	size := 0
	send := func(u []byte) {
		size += len(u)
		if keep {
			updates = append(updates, u)
		}
	}
	note, u, err := d.Create("sticky", Root, "", Props{"x": Number(0), "y": Number(0)})
	if err != nil {
		tb.Fatal(err)
	}
	send(u)
	if tr.StartContent != "" {
		if u, err = d.InsertText(note, "content", 0, tr.StartContent); err != nil {
			tb.Fatal(err)
		}
		send(u)
	}
	for i := range tr.Txns {
		for _, p := range tr.Txns[i].Patches {
			if p.Del > 0 {
				if u, err = d.DeleteText(note, "content", p.Pos, p.Del); err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
				send(u)
			}
			if p.Ins != "" {
				if u, err = d.InsertText(note, "content", p.Pos, p.Ins); err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
				send(u)
			}
		}
	}
	return d, note, updates, size
}

// BenchmarkDocTextAutomergePaperReplay types the 259,778 edits of
// automerge-paper into one sticky note, each a local Doc edit that returns
// its encoded update and records an undo step (compare
// BenchmarkTextAutomergePaperReplay, the bare Text). It reports the heap the
// document holds afterwards, the bytes of all updates, and the snapshot
// size, raw and after a Collect at the document's version.
func BenchmarkDocTextAutomergePaperReplay(b *testing.B) {
	tr := textLoadTrace(b, "automerge-paper")
	var d *Doc
	var note ID
	var heap uint64
	total := 0
	cpu := &textCPUMeter{tb: b}
	b.StopTimer()
	for range b.N {
		d = nil
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		cpu.begin()
		d, note, _, total = docTextReplay(b, tr, false) // updates are sent, not kept
		cpu.end()
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(d)
	}
	if d.Text(note, "content") != tr.EndContent {
		b.Fatal("wrong content")
	}
	raw := d.Snapshot()
	if _, err := d.Collect(d.Version()); err != nil {
		b.Fatal(err)
	}
	collected := d.Snapshot()
	cpu.report(b)
	b.ReportMetric(float64(heap), "heap-B")
	b.ReportMetric(float64(total), "updates-B")
	b.ReportMetric(float64(len(raw)), "snapshot-B")
	b.ReportMetric(float64(len(collected)), "collected-snapshot-B")
}

// BenchmarkDocTextAutomergePaperApply applies the replay's 259,778 updates
// one Apply call each to another document, as a server or a peer receives
// them (decoding included).
func BenchmarkDocTextAutomergePaperApply(b *testing.B) {
	tr := textLoadTrace(b, "automerge-paper")
	_, note, updates, _ := docTextReplay(b, tr, true)
	cpu := &textCPUMeter{tb: b}
	var d *Doc
	b.ResetTimer()
	for range b.N {
		d = NewDoc(2, nil)
		cpu.begin()
		for _, u := range updates {
			if err := d.Apply(u); err != nil {
				b.Fatal(err)
			}
		}
		cpu.end()
	}
	b.StopTimer()
	if d.Text(note, "content") != tr.EndContent {
		b.Fatal("wrong content")
	}
	cpu.report(b)
}

// BenchmarkDocTextAutomergePaperLoad loads the snapshot of the replayed
// document, collected or not.
func BenchmarkDocTextAutomergePaperLoad(b *testing.B) {
	for _, c := range []struct {
		name    string
		collect bool
	}{{"raw", false}, {"collected", true}} {
		b.Run(c.name, func(b *testing.B) {
			d, _, _, _ := docTextReplay(b, textLoadTrace(b, "automerge-paper"), false)
			if c.collect {
				if _, err := d.Collect(d.Version()); err != nil {
					b.Fatal(err)
				}
			}
			snap := d.Snapshot()
			b.SetBytes(int64(len(snap)))
			cpu := &textCPUMeter{tb: b}
			cpu.begin()
			for b.Loop() {
				if _, err := Load(2, nil, snap); err != nil {
					b.Fatal(err)
				}
			}
			cpu.end()
			cpu.report(b)
		})
	}
}

// TestDocTextAutomergePaper replays the trace through the document and
// checks the text, a snapshot round trip and a peer that applies every
// update (the full run only: it takes a few seconds under -race).
func TestDocTextAutomergePaper(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole trace through the document; runs without -short")
	}
	tr := textLoadTrace(t, "automerge-paper")
	d, note, updates, _ := docTextReplay(t, tr, true)
	if d.Text(note, "content") != tr.EndContent {
		t.Fatal("wrong content")
	}
	peer := NewDoc(2, nil)
	for _, u := range updates {
		if err := peer.Apply(u); err != nil {
			t.Fatal(err)
		}
	}
	snap := d.Snapshot()
	if string(peer.Snapshot()) != string(snap) {
		t.Fatal("the peer differs")
	}
	if _, err := d.Collect(d.Version()); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(3, nil, d.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Text(note, "content") != tr.EndContent {
		t.Fatal("wrong content after Load")
	}
}
