package domain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain/flag"
)

// Stored is a flag, segment or config value with its version and last
// change.
type Stored[T any] struct {
	Item      T
	Version   int64
	UpdatedBy uuid.UUID
	UpdatedAt time.Time
}

// ConfigValue is a typed value of one environment.
type ConfigValue struct {
	Key         string          `json:"key"`
	Type        flag.Type       `json:"type"`
	Value       json.RawMessage `json:"value"`
	Description string          `json:"description,omitempty"`
}

// Limits of flag data.
const (
	MaxFlagDefinitionBytes = 256 << 10 // one flag, segment or config value, as JSON
	MaxFlagItems           = 2000      // flags (or config values, or segments) per environment (or project)
	MaxEvaluationKeys      = 1000      // flags in one batch evaluation
	DefaultFlagHistory     = 1000
	DefaultFlagCacheTTL    = time.Second
)

var envNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func checkEnvironment(env string) error {
	if !envNameRE.MatchString(env) {
		return Errorf(EInvalid, "environment must be 1 to 63 lower-case letters, digits, '_' or '-', starting with a letter or digit.").
			WithDetail("field", "environment")
	}
	return nil
}

func checkFlagKey(field, key string) error {
	if !flag.ValidKey(key) {
		return Errorf(EInvalid, "%s must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.", field).
			WithDetail("field", field)
	}
	return nil
}

// invalidDefinition turns a flag.Error into EInvalid naming the field.
func invalidDefinition(err error) error {
	var fe *flag.Error
	if errors.As(err, &fe) {
		return Errorf(EInvalid, "%s: %s.", fe.Field, fe.Message).WithDetail("field", fe.Field)
	}
	return err
}

// Validate checks a config value: a valid key and type, and a value of that
// type.
func (c *ConfigValue) Validate() error {
	if err := checkFlagKey("key", c.Key); err != nil {
		return err
	}
	if !c.Type.Valid() {
		return Errorf(EInvalid, "type must be one of boolean, string, number, json.").WithDetail("field", "type")
	}
	if !c.Type.Holds(c.Value) {
		return Errorf(EInvalid, "value must be a JSON %s.", c.Type).WithDetail("field", "value")
	}
	return nil
}

func decodeItem[T any](it *FlagItem) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(it.Data, v); err != nil {
		return nil, Errorf(EInternal, "stored %s %q does not decode: %v", it.Kind, it.Key, err)
	}
	return v, nil
}

func decodeFlag(it *FlagItem) (*flag.Flag, error) {
	f, err := decodeItem[flag.Flag](it)
	if err != nil {
		return nil, err
	}
	// Validation prepares the flag for evaluation (it parses semantic
	// versions); a stored flag passed it when it was written.
	if err := f.Validate(); err != nil {
		return nil, Errorf(EInternal, "stored flag %q does not validate: %v", it.Key, err)
	}
	return f, nil
}

func decodeSegment(it *FlagItem) (*flag.Segment, error) {
	s, err := decodeItem[flag.Segment](it)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, Errorf(EInternal, "stored segment %q does not validate: %v", it.Key, err)
	}
	return s, nil
}

func stored[T any](it *FlagItem, v T) Stored[T] {
	return Stored[T]{Item: v, Version: it.Version, UpdatedBy: it.UpdatedBy, UpdatedAt: it.UpdatedAt}
}

// flagAccess checks that the actor may do a in a project and returns it.
func flagAccess(ctx context.Context, tx Tx, projectID, actor uuid.UUID, a Action) (*Project, error) {
	p, role, err := projectAccess(ctx, tx, projectID, actor)
	if err != nil {
		return nil, err
	}
	if err := authorize(role, a, "Project"); err != nil {
		return nil, err
	}
	return p, nil
}

// FlagEnvironments lists the environments of a project that hold flags or
// config values, with their versions (project members).
func (s *Service) FlagEnvironments(ctx context.Context, actor, projectID uuid.UUID) ([]FlagEnvironment, error) {
	var out []FlagEnvironment
	err := s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		if _, err := flagAccess(ctx, tx, projectID, actor, ActFlagRead); err != nil {
			return err
		}
		out, err = tx.FlagEnvironments(ctx, projectID)
		return err
	})
	return out, err
}

// listItems lists the items of a kind of an environment (project members).
func listItems[T any](ctx context.Context, s *Service, actor, projectID uuid.UUID, env, kind string, decode func(*FlagItem) (*T, error)) ([]Stored[*T], error) {
	if kind != FlagKindSegment {
		if err := checkEnvironment(env); err != nil {
			return nil, err
		}
	}
	var out []Stored[*T]
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		if _, err := flagAccess(ctx, tx, projectID, actor, ActFlagRead); err != nil {
			return err
		}
		var err error
		out, err = snapshotItems(ctx, tx, projectID, env, kind, decode)
		return err
	})
	return out, err
}

// getItem returns one item (project members).
func getItem[T any](ctx context.Context, s *Service, actor, projectID uuid.UUID, env, kind, key string, decode func(*FlagItem) (*T, error)) (*Stored[*T], error) {
	if kind != FlagKindSegment {
		if err := checkEnvironment(env); err != nil {
			return nil, err
		}
	}
	if err := checkFlagKey("key", key); err != nil {
		return nil, err
	}
	var out *Stored[*T]
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		if _, err := flagAccess(ctx, tx, projectID, actor, ActFlagRead); err != nil {
			return err
		}
		it, err := tx.FlagItem(ctx, projectID, env, kind, key)
		if err != nil {
			return err
		}
		v, err := decode(it)
		if err != nil {
			return err
		}
		st := stored(it, v)
		out = &st
		return nil
	})
	return out, err
}

// ListFlags lists the flags of an environment in key order.
func (s *Service) ListFlags(ctx context.Context, actor, projectID uuid.UUID, env string) ([]Stored[*flag.Flag], error) {
	return listItems(ctx, s, actor, projectID, env, FlagKindFlag, decodeFlag)
}

// GetFlag returns a flag of an environment.
func (s *Service) GetFlag(ctx context.Context, actor, projectID uuid.UUID, env, key string) (*Stored[*flag.Flag], error) {
	return getItem(ctx, s, actor, projectID, env, FlagKindFlag, key, decodeFlag)
}

// ListSegments lists the segments of a project in key order.
func (s *Service) ListSegments(ctx context.Context, actor, projectID uuid.UUID) ([]Stored[*flag.Segment], error) {
	return listItems(ctx, s, actor, projectID, "", FlagKindSegment, decodeSegment)
}

// GetSegment returns a segment of a project.
func (s *Service) GetSegment(ctx context.Context, actor, projectID uuid.UUID, key string) (*Stored[*flag.Segment], error) {
	return getItem(ctx, s, actor, projectID, "", FlagKindSegment, key, decodeSegment)
}

// ListConfig lists the config values of an environment in key order.
func (s *Service) ListConfig(ctx context.Context, actor, projectID uuid.UUID, env string) ([]Stored[*ConfigValue], error) {
	return listItems(ctx, s, actor, projectID, env, FlagKindConfig, decodeItem[ConfigValue])
}

// GetConfig returns a config value of an environment.
func (s *Service) GetConfig(ctx context.Context, actor, projectID uuid.UUID, env, key string) (*Stored[*ConfigValue], error) {
	return getItem(ctx, s, actor, projectID, env, FlagKindConfig, key, decodeItem[ConfigValue])
}

// flagWrite is one change of a flag, segment or config value.
type flagWrite struct {
	env, kind, key string
	delete         bool
	// prepare runs in the transaction before the change, given the current
	// item (nil if there is none). It returns the new definition (ignored
	// for a delete) or refuses the change.
	prepare func(tx Tx, old *FlagItem) (json.RawMessage, error)
}

// writeFlagItem applies w as actor (editors and up): it bumps the version
// of the environments w touches (a segment touches them all), stores the
// item, records the change in each environment's history, trims the history
// to Config.FlagHistory, publishes a delta on the project's flags channel
// and writes the audit event. It returns the item as stored (nil for a
// delete) and whether it was created.
func (s *Service) writeFlagItem(ctx context.Context, actor, projectID uuid.UUID, w flagWrite) (item *FlagItem, created bool, err error) {
	var envs []string
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, err := flagAccess(ctx, tx, projectID, actor, ActFlagWrite)
		if err != nil {
			return err
		}
		old, err := tx.FlagItem(ctx, projectID, w.env, w.kind, w.key)
		switch {
		case ErrorCode(err) == ENotFound:
			old = nil
		case err != nil:
			return err
		}
		if w.delete && old == nil {
			return notFound(flagWhatOf(w.kind))
		}
		var data json.RawMessage
		if w.prepare != nil {
			if data, err = w.prepare(tx, old); err != nil {
				return err
			}
		}
		if w.delete {
			data = nil
		} else if len(data) > MaxFlagDefinitionBytes {
			return Errorf(EInvalid, "The definition is larger than %d bytes.", MaxFlagDefinitionBytes)
		}
		if old == nil && !w.delete {
			items, err := tx.ListFlagItems(ctx, projectID, w.env, w.kind)
			if err != nil {
				return err
			}
			if len(items) >= MaxFlagItems {
				return Errorf(EConflict, "There are %d of them here already, the most there may be.", MaxFlagItems)
			}
		}
		// The item's own version: its environment's, or for a segment the
		// project's segment counter.
		version, err := tx.NextFlagVersion(ctx, projectID, w.env)
		if err != nil {
			return err
		}
		now := s.now()
		if w.delete {
			err = tx.DeleteFlagItem(ctx, projectID, w.env, w.kind, w.key)
		} else {
			item = &FlagItem{ProjectID: projectID, Environment: w.env, Kind: w.kind, Key: w.key,
				Data: data, Version: version, UpdatedBy: actor, UpdatedAt: now}
			err = tx.PutFlagItem(ctx, item)
		}
		if err != nil {
			return err
		}
		envs = []string{w.env}
		if w.kind == FlagKindSegment {
			all, err := tx.FlagEnvironments(ctx, projectID)
			if err != nil {
				return err
			}
			envs = envs[:0]
			for _, e := range all {
				envs = append(envs, e.Name)
			}
		}
		for _, env := range envs {
			v := version
			if w.kind == FlagKindSegment {
				if v, err = tx.NextFlagVersion(ctx, projectID, env); err != nil {
					return err
				}
			}
			c := &FlagChange{ProjectID: projectID, Environment: env, Version: v, Kind: w.kind, Key: w.key, Data: data, ActorID: actor, At: now}
			if err := tx.AppendFlagChange(ctx, c); err != nil {
				return err
			}
			if err := tx.TrimFlagChanges(ctx, projectID, env, v-int64(s.cfg.FlagHistory)); err != nil {
				return err
			}
			if err := s.emit(ctx, tx, actor, FlagsChannel(projectID), EventFlagsChanged, c.eventData()); err != nil {
				return err
			}
		}
		action := w.kind + ".update"
		switch {
		case w.delete:
			action = w.kind + ".delete"
		case old == nil:
			action = w.kind + ".create"
		}
		target := w.key
		if w.env != "" {
			target = w.env + "/" + w.key
		}
		ev := s.audit(ctx, actor, action, w.kind, target)
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, p.ID
		ev.Details = map[string]any{"version": version}
		if w.env != "" {
			ev.Details["environment"] = w.env
		}
		created = old == nil
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, false, err
	}
	for _, env := range envs {
		s.flagCache.forget(projectID, env)
	}
	return item, created, nil
}

func flagWhatOf(kind string) string {
	switch kind {
	case FlagKindConfig:
		return "Config value"
	case FlagKindSegment:
		return "Segment"
	}
	return "Flag"
}

// eventData is the data of the flags.changed event of c.
func (c *FlagChange) eventData() map[string]any {
	d := map[string]any{
		"environment": c.Environment, "version": c.Version, "kind": c.Kind, "key": c.Key, "deleted": c.Data == nil,
	}
	if c.Data != nil {
		d["definition"] = c.Data
	}
	return d
}

// newSalt returns a random salt for a new flag.
func newSalt() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PutFlag creates or replaces a flag of an environment (editors and up) and
// returns it as stored. A flag without a salt keeps its current one, or gets
// a random one when it is new. Every segment its rules name must exist.
func (s *Service) PutFlag(ctx context.Context, actor, projectID uuid.UUID, env string, f *flag.Flag) (*Stored[*flag.Flag], bool, error) {
	if err := checkEnvironment(env); err != nil {
		return nil, false, err
	}
	if err := f.Validate(); err != nil {
		return nil, false, invalidDefinition(err)
	}
	it, created, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{env: env, kind: FlagKindFlag, key: f.Key,
		prepare: func(tx Tx, old *FlagItem) (json.RawMessage, error) {
			if f.Salt == "" {
				f.Salt = newSalt()
				if old != nil {
					prev, err := decodeFlag(old)
					if err != nil {
						return nil, err
					}
					f.Salt = prev.Salt
				}
			}
			if err := checkSegmentsExist(ctx, tx, projectID, f); err != nil {
				return nil, err
			}
			return json.Marshal(f)
		}})
	if err != nil {
		return nil, false, err
	}
	st := stored(it, f)
	return &st, created, nil
}

// checkSegmentsExist returns EInvalid if a rule of f names a segment the
// project does not have.
func checkSegmentsExist(ctx context.Context, tx Tx, projectID uuid.UUID, f *flag.Flag) error {
	for i, r := range f.Rules {
		for j, c := range r.Conditions {
			if c.Op != flag.OpInSegment {
				continue
			}
			for k, v := range c.Values {
				_, err := tx.FlagItem(ctx, projectID, "", FlagKindSegment, v.(string))
				if ErrorCode(err) == ENotFound {
					field := fmt.Sprintf("rules[%d].conditions[%d].values[%d]", i, j, k)
					return Errorf(EInvalid, "%s: segment %q does not exist.", field, v).WithDetail("field", field)
				}
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// DeleteFlag deletes a flag of an environment (editors and up).
func (s *Service) DeleteFlag(ctx context.Context, actor, projectID uuid.UUID, env, key string) error {
	if err := checkEnvironment(env); err != nil {
		return err
	}
	if err := checkFlagKey("key", key); err != nil {
		return err
	}
	_, _, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{env: env, kind: FlagKindFlag, key: key, delete: true})
	return err
}

// PutSegment creates or replaces a segment of a project (editors and up).
// Every environment of the project gets a new version.
func (s *Service) PutSegment(ctx context.Context, actor, projectID uuid.UUID, seg *flag.Segment) (*Stored[*flag.Segment], bool, error) {
	if err := seg.Validate(); err != nil {
		return nil, false, invalidDefinition(err)
	}
	data, err := json.Marshal(seg)
	if err != nil {
		return nil, false, err
	}
	it, created, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{kind: FlagKindSegment, key: seg.Key,
		prepare: func(Tx, *FlagItem) (json.RawMessage, error) { return data, nil }})
	if err != nil {
		return nil, false, err
	}
	st := stored(it, seg)
	return &st, created, nil
}

// DeleteSegment deletes a segment of a project (editors and up). Returns
// EConflict while a flag of any environment names it.
func (s *Service) DeleteSegment(ctx context.Context, actor, projectID uuid.UUID, key string) error {
	if err := checkFlagKey("key", key); err != nil {
		return err
	}
	_, _, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{kind: FlagKindSegment, key: key, delete: true,
		prepare: func(tx Tx, _ *FlagItem) (json.RawMessage, error) {
			envs, err := tx.FlagEnvironments(ctx, projectID)
			if err != nil {
				return nil, err
			}
			for _, env := range envs {
				items, err := tx.ListFlagItems(ctx, projectID, env.Name, FlagKindFlag)
				if err != nil {
					return nil, err
				}
				for _, it := range items {
					f, err := decodeFlag(it)
					if err != nil {
						return nil, err
					}
					if usesSegment(f, key) {
						return nil, Errorf(EConflict, "Flag %q of %s uses segment %q; change it first.", f.Key, env.Name, key)
					}
				}
			}
			return nil, nil
		}})
	return err
}

func usesSegment(f *flag.Flag, key string) bool {
	for _, r := range f.Rules {
		for _, c := range r.Conditions {
			if c.Op == flag.OpInSegment && slices.Contains(c.Values, any(key)) {
				return true
			}
		}
	}
	return false
}

// PutConfig creates or replaces a config value of an environment (editors
// and up).
func (s *Service) PutConfig(ctx context.Context, actor, projectID uuid.UUID, env string, c *ConfigValue) (*Stored[*ConfigValue], bool, error) {
	if err := checkEnvironment(env); err != nil {
		return nil, false, err
	}
	if err := c.Validate(); err != nil {
		return nil, false, err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return nil, false, err
	}
	it, created, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{env: env, kind: FlagKindConfig, key: c.Key,
		prepare: func(Tx, *FlagItem) (json.RawMessage, error) { return data, nil }})
	if err != nil {
		return nil, false, err
	}
	st := stored(it, c)
	return &st, created, nil
}

// DeleteConfig deletes a config value of an environment (editors and up).
func (s *Service) DeleteConfig(ctx context.Context, actor, projectID uuid.UUID, env, key string) error {
	if err := checkEnvironment(env); err != nil {
		return err
	}
	if err := checkFlagKey("key", key); err != nil {
		return err
	}
	_, _, err := s.writeFlagItem(ctx, actor, projectID, flagWrite{env: env, kind: FlagKindConfig, key: key, delete: true})
	return err
}
