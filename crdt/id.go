package crdt

// ReplicaID identifies one editing replica: a client session or a server node.
// Replica ids must be unique per document; zero is reserved and never valid.
type ReplicaID uint64

// ID names one unit of change: the replica that made it and its sequence
// number there. Sequence numbers start at 1 and are contiguous per replica.
type ID struct {
	Replica ReplicaID
	Seq     uint64
}

// Less orders ids by replica, then sequence number.
func (a ID) Less(b ID) bool {
	if a.Replica != b.Replica {
		return a.Replica < b.Replica
	}
	return a.Seq < b.Seq
}

// Stamp is a Lamport timestamp: the basis of every last-writer-wins decision.
// Stamps are totally ordered by (Counter, Replica).
type Stamp struct {
	Counter uint64
	Replica ReplicaID
}

// Less reports whether a happened before b in the total Lamport order.
func (a Stamp) Less(b Stamp) bool {
	if a.Counter != b.Counter {
		return a.Counter < b.Counter
	}
	return a.Replica < b.Replica
}

// VersionVector maps each replica to the highest sequence number seen from it
// such that every lower number has been seen too.
type VersionVector map[ReplicaID]uint64

// Contains reports whether the unit of change id is covered by v.
func (v VersionVector) Contains(id ID) bool { return id.Seq <= v[id.Replica] }

// Clone returns a copy of v.
func (v VersionVector) Clone() VersionVector {
	c := make(VersionVector, len(v))
	for r, s := range v {
		c[r] = s
	}
	return c
}

// Merge raises every entry of v to at least the entry of o.
func (v VersionVector) Merge(o VersionVector) {
	for r, s := range o {
		if s > v[r] {
			v[r] = s
		}
	}
}

// Covers reports whether v has seen everything o has.
func (v VersionVector) Covers(o VersionVector) bool {
	for r, s := range o {
		if v[r] < s {
			return false
		}
	}
	return true
}

// Min returns the entry-wise minimum of the vectors: what all of them have
// seen. A replica missing from any vector counts as zero there.
func Min(vs ...VersionVector) VersionVector {
	if len(vs) == 0 {
		return VersionVector{}
	}
	out := vs[0].Clone()
	for _, v := range vs[1:] {
		for r, s := range out {
			if v[r] < s {
				if v[r] == 0 {
					delete(out, r)
				} else {
					out[r] = v[r]
				}
			}
		}
	}
	return out
}
