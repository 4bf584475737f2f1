package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/tone-ai/tone/domain/flag"
)

// FlagSync is what a client at some version of an environment needs to
// catch up: the changes since, or, when the history no longer reaches back
// that far, a snapshot of everything. Version is the environment's version
// the answer brings the client to.
type FlagSync struct {
	Environment string
	Version     int64
	Snapshot    bool
	Changes     []*FlagChange           // when !Snapshot, in version order
	Flags       []Stored[*flag.Flag]    // when Snapshot
	Segments    []Stored[*flag.Segment] // when Snapshot
	Config      []Stored[*ConfigValue]  // when Snapshot
}

// FlagChanges returns the changes of an environment after version since
// (project members). If the kept history (Config.FlagHistory changes) does
// not reach back to since, or since is ahead of the environment, it returns
// a snapshot instead; a snapshot may already hold changes made after
// Version, which the next call then repeats (applying a change twice is
// harmless: it replaces or deletes an item by key).
func (s *Service) FlagChanges(ctx context.Context, actor, projectID uuid.UUID, env string, since int64) (*FlagSync, error) {
	return s.flagChanges(ctx, actor, projectID, env, since, true)
}

// flagChanges is FlagChanges, checking the actor's membership if member is
// set (an SDK client's key was checked when it authenticated).
func (s *Service) flagChanges(ctx context.Context, actor, projectID uuid.UUID, env string, since int64, member bool) (*FlagSync, error) {
	if err := checkEnvironment(env); err != nil {
		return nil, err
	}
	if since < 0 {
		return nil, Errorf(EInvalid, "since must be 0 or more.").WithDetail("field", "since")
	}
	out := &FlagSync{Environment: env}
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		if member {
			if _, err := flagAccess(ctx, tx, projectID, actor, ActFlagRead); err != nil {
				return err
			}
		}
		// Versions commit in order (NextFlagVersion holds the environment),
		// so every change up to the version read has committed.
		v, err := tx.FlagVersion(ctx, projectID, env)
		if err != nil {
			return err
		}
		out.Version = v
		if since <= v {
			cs, err := tx.FlagChangesSince(ctx, projectID, env, since)
			if err != nil {
				return err
			}
			for len(cs) > 0 && cs[len(cs)-1].Version > v {
				cs = cs[:len(cs)-1]
			}
			if since == v || len(cs) > 0 && cs[0].Version == since+1 && cs[len(cs)-1].Version == v {
				out.Changes = cs
				return nil
			}
		}
		out.Snapshot = true
		if out.Flags, err = snapshotItems(ctx, tx, projectID, env, FlagKindFlag, decodeFlag); err != nil {
			return err
		}
		if out.Segments, err = snapshotItems(ctx, tx, projectID, "", FlagKindSegment, decodeSegment); err != nil {
			return err
		}
		out.Config, err = snapshotItems(ctx, tx, projectID, env, FlagKindConfig, decodeItem[ConfigValue])
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.Changes == nil {
		out.Changes = []*FlagChange{}
	}
	return out, nil
}

func snapshotItems[T any](ctx context.Context, tx Tx, projectID uuid.UUID, env, kind string, decode func(*FlagItem) (*T, error)) ([]Stored[*T], error) {
	items, err := tx.ListFlagItems(ctx, projectID, env, kind)
	if err != nil {
		return nil, err
	}
	out := make([]Stored[*T], 0, len(items))
	for _, it := range items {
		v, err := decode(it)
		if err != nil {
			return nil, err
		}
		out = append(out, stored(it, v))
	}
	return out, nil
}

// FlagEvaluation is the outcome of evaluating one flag, shaped like
// OpenFeature's evaluation details. On an error, Reason is ERROR, ErrorCode
// says which, and Value is nil.
type FlagEvaluation struct {
	Key          string
	Value        json.RawMessage
	Variant      string
	Reason       flag.Reason
	ErrorCode    flag.ErrorCode
	ErrorMessage string
	FlagVersion  int64 // the environment's version when the flag last changed
}

// EvaluationRequest asks for flags of one environment.
type EvaluationRequest struct {
	// Keys are the flags to evaluate, in the order the answers come in;
	// empty: every flag of the environment, in key order.
	Keys []string
	// Type, if set, is the type the caller expects: a flag of another type
	// answers ERROR with TYPE_MISMATCH.
	Type    flag.Type
	Context flag.Context
}

// flagReader is a user who may read a project's flags.
type flagReader struct{ user, project uuid.UUID }

// EvaluateFlags evaluates flags of an environment for a context (project
// members) and returns the answers and the environment's version they come
// from. It reads the service's cached copy of the environment, which is
// checked against the stored version at most once per Config.FlagCacheTTL
// (and dropped at once when this service changes it), and remembers a
// member's right to read for as long: a change made through another node,
// or a member removed, shows after at most that long.
func (s *Service) EvaluateFlags(ctx context.Context, actor, projectID uuid.UUID, env string, req EvaluationRequest) (int64, []FlagEvaluation, error) {
	if err := checkEnvironment(env); err != nil {
		return 0, nil, err
	}
	now := s.now()
	reader := flagReader{actor, projectID}
	if !s.flagReaders.fresh(reader, now) {
		if err := s.Authorize(ctx, actor, projectID, ActFlagRead); err != nil {
			return 0, nil, err
		}
		s.flagReaders.put(reader, now.Add(s.cfg.FlagCacheTTL))
	}
	return s.evaluateFlags(ctx, actor, projectID, env, req)
}

// evaluateFlags evaluates for an actor whose right to read was checked.
func (s *Service) evaluateFlags(ctx context.Context, actor, projectID uuid.UUID, env string, req EvaluationRequest) (int64, []FlagEvaluation, error) {
	if len(req.Keys) > MaxEvaluationKeys {
		return 0, nil, Errorf(EInvalid, "At most %d flags per evaluation.", MaxEvaluationKeys).WithDetail("field", "keys")
	}
	if req.Type != "" && !req.Type.Valid() {
		return 0, nil, Errorf(EInvalid, "type must be one of boolean, string, number, json.").WithDetail("field", "type")
	}
	set, err := s.flagCache.get(ctx, s, actor, projectID, env)
	if err != nil {
		return 0, nil, err
	}
	keys := req.Keys
	if len(keys) == 0 {
		keys = set.keys
	}
	out := make([]FlagEvaluation, len(keys))
	ev := flag.NewEvaluator(req.Context, set.segments)
	for i, key := range keys {
		out[i] = set.evaluate(key, req.Type, ev)
	}
	return set.version, out, nil
}

// flagSet is an environment's flags and its project's segments, ready to
// evaluate, as of version.
type flagSet struct {
	version  int64
	flags    map[string]*Stored[*flag.Flag]
	keys     []string // of flags, in key order
	segments map[string]*flag.Segment
}

func (fs *flagSet) evaluate(key string, typ flag.Type, ev *flag.Evaluator) FlagEvaluation {
	f := fs.flags[key]
	if f == nil {
		return FlagEvaluation{Key: key, Reason: flag.ReasonError, ErrorCode: flag.ErrFlagNotFound,
			ErrorMessage: fmt.Sprintf("No flag %q in this environment.", key)}
	}
	if typ != "" && typ != f.Item.Type {
		return FlagEvaluation{Key: key, Reason: flag.ReasonError, ErrorCode: flag.ErrTypeMismatch, FlagVersion: f.Version,
			ErrorMessage: fmt.Sprintf("Flag %q is of type %s, not %s.", key, f.Item.Type, typ)}
	}
	r := ev.Evaluate(f.Item)
	return FlagEvaluation{Key: key, Value: r.Value, Variant: r.Variant, Reason: r.Reason, FlagVersion: f.Version}
}

type flagCacheKey struct {
	project uuid.UUID
	env     string
}

type flagCacheEntry struct {
	set     *flagSet
	checked time.Time
}

// flagCache holds flagSets by environment. It is safe for concurrent use.
type flagCache struct {
	mu    sync.Mutex
	m     map[flagCacheKey]*flagCacheEntry
	loads singleflight.Group
}

// get returns the environment's flagSet, checking the stored version when
// the copy is older than Config.FlagCacheTTL and reloading it when the
// version moved. Concurrent callers share one check.
func (c *flagCache) get(ctx context.Context, s *Service, actor, projectID uuid.UUID, env string) (*flagSet, error) {
	k := flagCacheKey{projectID, env}
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e != nil && s.now().Sub(e.checked) < s.cfg.FlagCacheTTL {
		return e.set, nil
	}
	v, err, _ := c.loads.Do(projectID.String()+"/"+env, func() (any, error) {
		set, err := loadFlagSet(ctx, s, actor, projectID, env, e)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[flagCacheKey]*flagCacheEntry{}
		}
		c.m[k] = &flagCacheEntry{set: set, checked: s.now()}
		c.mu.Unlock()
		return set, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*flagSet), nil
}

// forget drops the copy of an environment, so that the next evaluation
// loads it.
func (c *flagCache) forget(projectID uuid.UUID, env string) {
	c.mu.Lock()
	delete(c.m, flagCacheKey{projectID, env})
	c.mu.Unlock()
}

// loadFlagSet reads an environment's version and, unless it is the version
// of old, its flags and the project's segments.
func loadFlagSet(ctx context.Context, s *Service, actor, projectID uuid.UUID, env string, old *flagCacheEntry) (*flagSet, error) {
	var set *flagSet
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		v, err := tx.FlagVersion(ctx, projectID, env)
		if err != nil {
			return err
		}
		if old != nil && old.set.version == v {
			set = old.set
			return nil
		}
		flags, err := snapshotItems(ctx, tx, projectID, env, FlagKindFlag, decodeFlag)
		if err != nil {
			return err
		}
		segs, err := snapshotItems(ctx, tx, projectID, "", FlagKindSegment, decodeSegment)
		if err != nil {
			return err
		}
		set = &flagSet{version: v, flags: make(map[string]*Stored[*flag.Flag], len(flags)),
			keys: make([]string, 0, len(flags)), segments: make(map[string]*flag.Segment, len(segs))}
		for i := range flags {
			set.flags[flags[i].Item.Key] = &flags[i]
			set.keys = append(set.keys, flags[i].Item.Key)
		}
		for _, sg := range segs {
			set.segments[sg.Item.Key] = sg.Item
		}
		return nil
	})
	return set, err
}
