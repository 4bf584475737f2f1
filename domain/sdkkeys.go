package domain

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// sdkKeyPrefix starts every SDK key secret, so that leaked ones are easy to
// recognise.
const sdkKeyPrefix = "tone_sdk_"

// SDKClient is the principal of a request made with an SDK key: it may
// evaluate the flags of one environment of one project, and read its
// changes.
type SDKClient struct {
	KeyID       uuid.UUID
	ProjectID   uuid.UUID
	Environment string
}

// sdkKeyCache remembers recently authenticated SDK keys, by the SHA-256 of
// their secret, for Config.FlagCacheTTL.
type sdkKeyCache struct {
	keys expiringSet[string]
	mu   sync.Mutex
	m    map[string]*SDKClient
}

// AuthenticateSDK returns the client an SDK key secret speaks for. Returns
// EUnauthenticated for an empty, unknown or revoked key. A key that
// authenticated is trusted for Config.FlagCacheTTL without asking the store
// again: a revocation made through another server applies after at most
// that long (at once on this one).
func (s *Service) AuthenticateSDK(ctx context.Context, secret string) (*SDKClient, error) {
	if secret == "" {
		return nil, Errorf(EUnauthenticated, "Sign in first: no access token.")
	}
	if !strings.HasPrefix(secret, sdkKeyPrefix) {
		return nil, Errorf(EUnauthenticated, "Not an SDK key.")
	}
	hash := string(hashToken(secret))
	now := s.now()
	if c := s.sdkKeys.get(hash, now); c != nil {
		return c, nil
	}
	var k *SDKKey
	err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) (err error) {
		k, err = tx.SDKKeyByHash(ctx, []byte(hash))
		return err
	})
	switch {
	case ErrorCode(err) == ENotFound:
		return nil, Errorf(EUnauthenticated, "SDK key invalid.")
	case err != nil:
		return nil, err
	case k.RevokedAt != nil:
		return nil, Errorf(EUnauthenticated, "SDK key revoked.")
	}
	c := &SDKClient{KeyID: k.ID, ProjectID: k.ProjectID, Environment: k.Environment}
	s.sdkKeys.put(hash, c, now.Add(s.cfg.FlagCacheTTL))
	return c, nil
}

func (c *sdkKeyCache) get(hash string, now time.Time) *SDKClient {
	if !c.keys.fresh(hash, now) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[hash]
}

func (c *sdkKeyCache) put(hash string, client *SDKClient, until time.Time) {
	c.mu.Lock()
	if c.m == nil || len(c.m) > 100000 {
		c.m = map[string]*SDKClient{}
	}
	c.m[hash] = client
	c.mu.Unlock()
	c.keys.put(hash, until)
}

// forget drops a revoked key.
func (c *sdkKeyCache) forget(keyID uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, cl := range c.m {
		if cl.KeyID == keyID {
			delete(c.m, h)
		}
	}
}

// CreateSDKKey creates an SDK key for an environment of a project (admins
// and up) and returns it with its secret, which is not stored and cannot be
// shown again.
func (s *Service) CreateSDKKey(ctx context.Context, actor, projectID uuid.UUID, env, name string) (*SDKKey, string, error) {
	if err := checkEnvironment(env); err != nil {
		return nil, "", err
	}
	name, err := checkName("name", name)
	if err != nil {
		return nil, "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	secret := sdkKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	var k *SDKKey
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		p, err := flagAccess(ctx, tx, projectID, actor, ActSDKKeysManage)
		if err != nil {
			return err
		}
		k = &SDKKey{ID: newID(), ProjectID: projectID, Environment: env, Name: name,
			Hash: hashToken(secret), CreatedBy: actor, CreatedAt: s.now()}
		if err := tx.CreateSDKKey(ctx, k); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "sdk_key.create", "sdk_key", k.ID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		ev.Details = map[string]any{"name": name, "environment": env}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// ListSDKKeys lists a project's SDK keys, revoked ones included (admins and
// up), a page at a time, and the cursor of the next page ("" at the end).
func (s *Service) ListSDKKeys(ctx context.Context, actor, projectID uuid.UUID, opt ListOptions) ([]*SDKKey, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ks []*SDKKey
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		if _, err := flagAccess(ctx, tx, projectID, actor, ActSDKKeysManage); err != nil {
			return err
		}
		ks, err = tx.ListSDKKeys(ctx, projectID, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ks, next := nextCursor(ks, limit, func(k *SDKKey) uuid.UUID { return k.ID })
	return ks, next, nil
}

// RevokeSDKKey revokes an SDK key of a project (admins and up). Revoking a
// revoked key changes nothing and succeeds.
func (s *Service) RevokeSDKKey(ctx context.Context, actor, projectID, keyID uuid.UUID) error {
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		p, err := flagAccess(ctx, tx, projectID, actor, ActSDKKeysManage)
		if err != nil {
			return err
		}
		k, err := tx.SDKKeyByID(ctx, keyID)
		if ErrorCode(err) == ENotFound || err == nil && k.ProjectID != projectID {
			return notFound("SDK key")
		}
		if err != nil {
			return err
		}
		if err := tx.RevokeSDKKey(ctx, keyID, s.now()); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "sdk_key.revoke", "sdk_key", keyID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		ev.Details = map[string]any{"name": k.Name, "environment": k.Environment}
		return tx.AppendAudit(ctx, ev)
	})
	if err == nil {
		s.sdkKeys.forget(keyID)
	}
	return err
}

// EvaluateFlagsSDK evaluates flags of the client's environment, as
// EvaluateFlags does for members.
func (s *Service) EvaluateFlagsSDK(ctx context.Context, c *SDKClient, req EvaluationRequest) (int64, []FlagEvaluation, error) {
	return s.evaluateFlags(ctx, c.KeyID, c.ProjectID, c.Environment, req)
}

// FlagChangesSDK returns the changes of the client's environment since a
// version, as FlagChanges does for members.
func (s *Service) FlagChangesSDK(ctx context.Context, c *SDKClient, since int64) (*FlagSync, error) {
	return s.flagChanges(ctx, c.KeyID, c.ProjectID, c.Environment, since, false)
}
