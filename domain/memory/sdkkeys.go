package memory

import (
	"bytes"
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

func cloneSDKKey(k *domain.SDKKey) *domain.SDKKey {
	c := clone(k)
	c.Hash = bytes.Clone(k.Hash)
	c.CreatedAt = c.CreatedAt.UTC()
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		c.RevokedAt = &t
	}
	return c
}

func (t *tx) CreateSDKKey(_ context.Context, k *domain.SDKKey) error {
	if _, ok := t.s.projects[k.ProjectID]; !ok {
		return notFound("Project")
	}
	if _, ok := t.s.sdkKeys[k.ID]; ok {
		return domain.Errorf(domain.EConflict, "SDK key already exists.")
	}
	for _, o := range t.s.sdkKeys {
		if bytes.Equal(o.Hash, k.Hash) {
			return domain.Errorf(domain.EConflict, "SDK key already exists.")
		}
	}
	set(t, t.s.sdkKeys, k.ID, cloneSDKKey(k))
	return nil
}

func (t *tx) SDKKeyByHash(_ context.Context, hash []byte) (*domain.SDKKey, error) {
	for _, k := range t.s.sdkKeys {
		if bytes.Equal(k.Hash, hash) {
			return cloneSDKKey(k), nil
		}
	}
	return nil, notFound("SDK key")
}

func (t *tx) SDKKeyByID(_ context.Context, id uuid.UUID) (*domain.SDKKey, error) {
	k, ok := t.s.sdkKeys[id]
	if !ok {
		return nil, notFound("SDK key")
	}
	return cloneSDKKey(k), nil
}

func (t *tx) ListSDKKeys(_ context.Context, projectID uuid.UUID, p domain.Page) ([]*domain.SDKKey, error) {
	var out []*domain.SDKKey
	for _, k := range t.s.sdkKeys {
		if k.ProjectID == projectID {
			out = append(out, cloneSDKKey(k))
		}
	}
	return page(out, func(k *domain.SDKKey) uuid.UUID { return k.ID }, p), nil
}

func (t *tx) RevokeSDKKey(_ context.Context, id uuid.UUID, at time.Time) error {
	k, ok := t.s.sdkKeys[id]
	if !ok {
		return notFound("SDK key")
	}
	if k.RevokedAt == nil {
		c := cloneSDKKey(k)
		at = at.UTC()
		c.RevokedAt = &at
		set(t, t.s.sdkKeys, id, c)
	}
	return nil
}
