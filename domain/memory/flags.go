package memory

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type flagEnvKey struct {
	project uuid.UUID
	env     string
}

type flagItemKey struct {
	project        uuid.UUID
	env, kind, key string
}

type flagChangeKey struct {
	project uuid.UUID
	env     string
	version int64
}

// flagData is the part of the store holding flags, config values, segments,
// their history and SDK keys.
type flagData struct {
	flagVersions map[flagEnvKey]int64
	flagItems    map[flagItemKey]*domain.FlagItem
	flagChanges  map[flagChangeKey]*domain.FlagChange
	sdkKeys      map[uuid.UUID]*domain.SDKKey
}

func newFlagData() flagData {
	return flagData{
		flagVersions: map[flagEnvKey]int64{},
		flagItems:    map[flagItemKey]*domain.FlagItem{},
		flagChanges:  map[flagChangeKey]*domain.FlagChange{},
		sdkKeys:      map[uuid.UUID]*domain.SDKKey{},
	}
}

func cloneFlagItem(it *domain.FlagItem) *domain.FlagItem {
	c := clone(it)
	c.Data = bytes.Clone(it.Data)
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c
}

func cloneFlagChange(ch *domain.FlagChange) *domain.FlagChange {
	c := clone(ch)
	c.Data = bytes.Clone(ch.Data)
	c.At = c.At.UTC()
	return c
}

func flagWhat(kind string) string {
	switch kind {
	case domain.FlagKindConfig:
		return "Config value"
	case domain.FlagKindSegment:
		return "Segment"
	}
	return "Flag"
}

func (t *tx) NextFlagVersion(_ context.Context, projectID uuid.UUID, env string) (int64, error) {
	if _, ok := t.s.projects[projectID]; !ok {
		return 0, notFound("Project")
	}
	k := flagEnvKey{projectID, env}
	v := t.s.flagVersions[k] + 1
	set(t, t.s.flagVersions, k, v)
	return v, nil
}

func (t *tx) FlagVersion(_ context.Context, projectID uuid.UUID, env string) (int64, error) {
	return t.s.flagVersions[flagEnvKey{projectID, env}], nil
}

func (t *tx) FlagEnvironments(_ context.Context, projectID uuid.UUID) ([]domain.FlagEnvironment, error) {
	out := []domain.FlagEnvironment{}
	for k, v := range t.s.flagVersions {
		if k.project == projectID && k.env != "" {
			out = append(out, domain.FlagEnvironment{Name: k.env, Version: v})
		}
	}
	slices.SortFunc(out, func(a, b domain.FlagEnvironment) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (t *tx) PutFlagItem(_ context.Context, it *domain.FlagItem) error {
	if _, ok := t.s.flagVersions[flagEnvKey{it.ProjectID, it.Environment}]; !ok {
		return domain.Errorf(domain.EInvalid, "Environment %q has no version yet; take one with NextFlagVersion first.", it.Environment)
	}
	set(t, t.s.flagItems, flagItemKey{it.ProjectID, it.Environment, it.Kind, it.Key}, cloneFlagItem(it))
	return nil
}

func (t *tx) FlagItem(_ context.Context, projectID uuid.UUID, env, kind, key string) (*domain.FlagItem, error) {
	it, ok := t.s.flagItems[flagItemKey{projectID, env, kind, key}]
	if !ok {
		return nil, notFound(flagWhat(kind))
	}
	return cloneFlagItem(it), nil
}

func (t *tx) ListFlagItems(_ context.Context, projectID uuid.UUID, env, kind string) ([]*domain.FlagItem, error) {
	var out []*domain.FlagItem
	for k, it := range t.s.flagItems {
		if k.project == projectID && k.env == env && k.kind == kind {
			out = append(out, cloneFlagItem(it))
		}
	}
	slices.SortFunc(out, func(a, b *domain.FlagItem) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (t *tx) DeleteFlagItem(_ context.Context, projectID uuid.UUID, env, kind, key string) error {
	k := flagItemKey{projectID, env, kind, key}
	if _, ok := t.s.flagItems[k]; !ok {
		return notFound(flagWhat(kind))
	}
	del(t, t.s.flagItems, k)
	return nil
}

func (t *tx) AppendFlagChange(_ context.Context, c *domain.FlagChange) error {
	if _, ok := t.s.flagVersions[flagEnvKey{c.ProjectID, c.Environment}]; !ok {
		return domain.Errorf(domain.EInvalid, "Environment %q has no version yet.", c.Environment)
	}
	k := flagChangeKey{c.ProjectID, c.Environment, c.Version}
	if _, ok := t.s.flagChanges[k]; ok {
		return domain.Errorf(domain.EConflict, "Version %d of environment %q exists.", c.Version, c.Environment)
	}
	set(t, t.s.flagChanges, k, cloneFlagChange(c))
	return nil
}

func (t *tx) FlagChangesSince(_ context.Context, projectID uuid.UUID, env string, since int64) ([]*domain.FlagChange, error) {
	var out []*domain.FlagChange
	for k, c := range t.s.flagChanges {
		if k.project == projectID && k.env == env && k.version > since {
			out = append(out, cloneFlagChange(c))
		}
	}
	slices.SortFunc(out, func(a, b *domain.FlagChange) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

func (t *tx) TrimFlagChanges(_ context.Context, projectID uuid.UUID, env string, upTo int64) error {
	for k := range t.s.flagChanges {
		if k.project == projectID && k.env == env && k.version <= upTo {
			del(t, t.s.flagChanges, k)
		}
	}
	return nil
}

// deleteProjectFlags removes a deleted project's flag data.
func (t *tx) deleteProjectFlags(projectID uuid.UUID) {
	for k := range t.s.flagVersions {
		if k.project == projectID {
			del(t, t.s.flagVersions, k)
		}
	}
	for k := range t.s.flagItems {
		if k.project == projectID {
			del(t, t.s.flagItems, k)
		}
	}
	for k := range t.s.flagChanges {
		if k.project == projectID {
			del(t, t.s.flagChanges, k)
		}
	}
	for id, k := range t.s.sdkKeys {
		if k.ProjectID == projectID {
			del(t, t.s.sdkKeys, id)
		}
	}
}
