package crdt

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// textTrace is an editing trace of josephg/editing-traces (see the README in
// shared/data/editing-traces).
type textTrace struct {
	StartContent string         `json:"startContent"`
	EndContent   string         `json:"endContent"`
	Kind         string         `json:"kind"`
	NumAgents    int            `json:"numAgents"`
	Txns         []textTraceTxn `json:"txns"`
}

type textTraceTxn struct {
	Parents []int            `json:"parents"`
	Agent   int              `json:"agent"`
	Patches []textTracePatch `json:"patches"`
}

// textTracePatch is [pos, numDeleted, inserted].
type textTracePatch struct {
	Pos, Del int
	Ins      string
}

func (p *textTracePatch) UnmarshalJSON(b []byte) error {
	var raw [3]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.Pos); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[1], &p.Del); err != nil {
		return err
	}
	return json.Unmarshal(raw[2], &p.Ins)
}

// textTraceDir finds shared/data/editing-traces by walking up from the
// package directory (the repo may sit beside shared/, as in CI, or inside
// the workspace, as in a worktree). When it is missing the test fails in CI
// (CI=true) and is skipped loudly elsewhere.
func textTraceDir(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		tb.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "shared", "data", "editing-traces")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("shared/data/editing-traces not found above the package directory (required in CI)")
	}
	tb.Skip("SKIPPING: shared/data/editing-traces not found above the package directory; trace tests did not run")
	return ""
}

var textTraceCache sync.Map // name -> *textTrace

// textLoadTrace loads and caches trace name (without .json.gz).
func textLoadTrace(tb testing.TB, name string) *textTrace {
	tb.Helper()
	if tr, ok := textTraceCache.Load(name); ok {
		return tr.(*textTrace)
	}
	f, err := os.Open(filepath.Join(textTraceDir(tb), name+".json.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var tr textTrace
	if err := json.NewDecoder(zr).Decode(&tr); err != nil {
		tb.Fatalf("decode %s: %v", name, err)
	}
	textTraceCache.Store(name, &tr)
	return &tr
}

// textReplaySeq replays a sequential trace on one replica, edit by edit.
func textReplaySeq(tb testing.TB, tr *textTrace) *TextReplica {
	tb.Helper()
	r := NewTextReplica(1, nil)
	if tr.StartContent != "" {
		if _, err := r.Insert(0, tr.StartContent); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range tr.Txns {
		for _, p := range tr.Txns[i].Patches {
			if p.Del > 0 {
				if _, err := r.Delete(p.Pos, p.Del); err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
			}
			if p.Ins != "" {
				if _, err := r.Insert(p.Pos, p.Ins); err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
			}
		}
	}
	return r
}
