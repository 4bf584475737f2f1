package crdt

import "sort"

// textSeqs is a set of sequence numbers of one replica: sorted, disjoint,
// non-adjacent half-open ranges. Runs of consecutive operations collapse into
// one range, so a replica that only edits this text costs one range.
type textSeqs []textSeqRange

type textSeqRange struct{ start, end uint64 } // [start, end)

// add inserts [start, end) into the set.
func (s *textSeqs) add(start, end uint64) {
	r := *s
	if n := len(r); n == 0 || r[n-1].end < start {
		*s = append(r, textSeqRange{start, end})
		return
	} else if r[n-1].start <= start {
		r[n-1].end = max(r[n-1].end, end)
		return
	}
	// First range that ends at or after start: it may touch [start, end).
	i := sort.Search(len(r), func(i int) bool { return r[i].end >= start })
	j := i
	for j < len(r) && r[j].start <= end {
		start = min(start, r[j].start)
		end = max(end, r[j].end)
		j++
	}
	if i == j {
		r = append(r, textSeqRange{})
		copy(r[i+1:], r[i:])
		r[i] = textSeqRange{start, end}
		*s = r
		return
	}
	r[i] = textSeqRange{start, end}
	*s = append(r[:i+1], r[j:]...)
}

// has reports whether seq is in the set.
func (s textSeqs) has(seq uint64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].end > seq })
	return i < len(s) && s[i].start <= seq
}

// hasAny reports whether any of [start, end) is in the set.
func (s textSeqs) hasAny(start, end uint64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].end > start })
	return i < len(s) && s[i].start < end
}

// covers reports whether all of [start, end) is in the set.
func (s textSeqs) covers(start, end uint64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].end > start })
	return i < len(s) && s[i].start <= start && end <= s[i].end
}

// contiguous returns the highest n such that 1..n are all in the set.
func (s textSeqs) contiguous() uint64 {
	if len(s) == 0 || s[0].start != 1 {
		return 0
	}
	return s[0].end - 1
}

// last returns the highest seq in the set, or 0.
func (s textSeqs) last() uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].end - 1
}
