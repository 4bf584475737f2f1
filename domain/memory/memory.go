// Package memory implements the domain store interfaces in process memory.
//
// It is the store of the embedded default (`tone serve` with no database)
// and of fast unit tests, and passes the same contract suite as the
// PostgreSQL store. Transactions are serialised by one lock and rolled back
// with an undo log, so a failed use case leaves nothing behind. Nothing
// survives a restart. A Store is safe for concurrent use.
package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type memberKey struct{ scope, user uuid.UUID }

// Store is an in-memory domain.Store.
type Store struct {
	mu             sync.Mutex
	users          map[uuid.UUID]*domain.User
	emails         map[string]uuid.UUID
	tokens         map[uuid.UUID]*domain.RefreshToken
	tokenHashes    map[string]uuid.UUID
	workspaces     map[uuid.UUID]*domain.Workspace
	wsMembers      map[memberKey]*domain.Member
	projects       map[uuid.UUID]*domain.Project
	projectMembers map[memberKey]*domain.Member
	audit          []*domain.AuditEvent
	auditHeads     map[uuid.UUID]domain.AuditHead
	canvasData
	outboxData
	notificationData
	activityData
	deployData
	flagData
	logData
	artifactData
}

var _ domain.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		users:            map[uuid.UUID]*domain.User{},
		emails:           map[string]uuid.UUID{},
		tokens:           map[uuid.UUID]*domain.RefreshToken{},
		tokenHashes:      map[string]uuid.UUID{},
		workspaces:       map[uuid.UUID]*domain.Workspace{},
		wsMembers:        map[memberKey]*domain.Member{},
		projects:         map[uuid.UUID]*domain.Project{},
		projectMembers:   map[memberKey]*domain.Member{},
		auditHeads:       map[uuid.UUID]domain.AuditHead{},
		canvasData:       newCanvasData(),
		outboxData:       newOutboxData(),
		notificationData: newNotificationData(),
		deployData:       newDeployData(),
		flagData:         newFlagData(),
		logData:          newLogData(),
		artifactData:     newArtifactData(),
	}
}

// Ping always succeeds.
func (s *Store) Ping(context.Context) error { return nil }

// InTx runs fn holding the store's lock; if fn fails, every change it made
// is undone in reverse order.
func (s *Store) InTx(ctx context.Context, actor uuid.UUID, fn func(domain.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &tx{s: s, actor: actor}
	defer func() {
		if p := recover(); p != nil {
			tx.rollback()
			panic(p)
		}
		if err != nil {
			tx.rollback()
		}
	}()
	return fn(tx)
}

// tx is one transaction: it changes the store directly and records how to
// undo each change.
type tx struct {
	s     *Store
	actor uuid.UUID
	undo  []func()
}

var _ domain.Tx = (*tx)(nil)

func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
}

// set stores v under k in m, recording how to restore the old entry.
func set[K comparable, V any](t *tx, m map[K]V, k K, v V) {
	old, had := m[k]
	m[k] = v
	t.undo = append(t.undo, func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
}

// del removes k from m, recording how to restore it.
func del[K comparable, V any](t *tx, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	delete(m, k)
	t.undo = append(t.undo, func() { m[k] = old })
}

func clone[T any](v *T) *T {
	c := *v
	return &c
}

// page returns the items with id after p.After, at most p.Limit of them,
// from items sorted by id.
func page[T any](items []T, id func(T) uuid.UUID, p domain.Page) []T {
	slices.SortFunc(items, func(a, b T) int { return cmpID(id(a), id(b)) })
	i, _ := slices.BinarySearchFunc(items, p.After, func(it T, after uuid.UUID) int {
		if c := cmpID(id(it), after); c != 0 {
			return c
		}
		return -1 // an item equal to After sorts before it, so it is skipped
	})
	items = items[i:]
	if p.Limit > 0 && len(items) > p.Limit {
		items = items[:p.Limit]
	}
	return items
}

func cmpID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func notFound(what string) error { return domain.Errorf(domain.ENotFound, "%s not found.", what) }

// Users.

func (t *tx) CreateUser(_ context.Context, u *domain.User) error {
	if _, ok := t.s.emails[u.Email]; ok {
		return domain.Errorf(domain.EConflict, "Email already registered.")
	}
	set(t, t.s.users, u.ID, clone(u))
	set(t, t.s.emails, u.Email, u.ID)
	return nil
}

func (t *tx) UserByID(_ context.Context, id uuid.UUID) (*domain.User, error) {
	u, ok := t.s.users[id]
	if !ok {
		return nil, notFound("User")
	}
	return clone(u), nil
}

func (t *tx) UserByEmail(ctx context.Context, email string) (*domain.User, error) {
	id, ok := t.s.emails[email]
	if !ok {
		return nil, notFound("User")
	}
	return t.UserByID(ctx, id)
}

func (t *tx) UpdateUser(_ context.Context, u *domain.User) error {
	old, ok := t.s.users[u.ID]
	if !ok {
		return notFound("User")
	}
	if old.Email != u.Email {
		if _, taken := t.s.emails[u.Email]; taken {
			return domain.Errorf(domain.EConflict, "Email already registered.")
		}
		del(t, t.s.emails, old.Email)
		set(t, t.s.emails, u.Email, u.ID)
	}
	set(t, t.s.users, u.ID, clone(u))
	return nil
}

// scopes returns the workspaces and projects user belongs to.
func (t *tx) scopes(user uuid.UUID) map[uuid.UUID]bool {
	out := map[uuid.UUID]bool{}
	for k := range t.s.wsMembers {
		if k.user == user {
			out[k.scope] = true
		}
	}
	for k := range t.s.projectMembers {
		if k.user == user {
			out[k.scope] = true
		}
	}
	return out
}

func (t *tx) AreCoMembers(_ context.Context, a, b uuid.UUID) (bool, error) {
	as := t.scopes(a)
	for s := range t.scopes(b) {
		if as[s] {
			return true, nil
		}
	}
	// A project member shares the project with its workspace's members.
	for k := range t.s.projectMembers {
		if k.user != a && k.user != b {
			continue
		}
		other := b
		if k.user == b {
			other = a
		}
		if p, ok := t.s.projects[k.scope]; ok {
			if _, ok := t.s.wsMembers[memberKey{p.WorkspaceID, other}]; ok {
				return true, nil
			}
		}
	}
	return false, nil
}

// Refresh tokens.

func (t *tx) CreateRefreshToken(_ context.Context, rt *domain.RefreshToken) error {
	if _, ok := t.s.tokenHashes[string(rt.Hash)]; ok {
		return domain.Errorf(domain.EConflict, "Refresh token exists.")
	}
	set(t, t.s.tokens, rt.ID, clone(rt))
	set(t, t.s.tokenHashes, string(rt.Hash), rt.ID)
	return nil
}

func (t *tx) RefreshTokenByHash(_ context.Context, hash []byte) (*domain.RefreshToken, error) {
	id, ok := t.s.tokenHashes[string(hash)]
	if !ok {
		return nil, notFound("Refresh token")
	}
	return clone(t.s.tokens[id]), nil
}

func (t *tx) MarkRefreshTokenUsed(_ context.Context, id uuid.UUID, at time.Time) error {
	rt, ok := t.s.tokens[id]
	if !ok {
		return notFound("Refresh token")
	}
	c := clone(rt)
	c.UsedAt = &at
	set(t, t.s.tokens, id, c)
	return nil
}

func (t *tx) revokeWhere(match func(*domain.RefreshToken) bool, at time.Time) {
	for id, rt := range t.s.tokens {
		if rt.RevokedAt == nil && match(rt) {
			c := clone(rt)
			c.RevokedAt = &at
			set(t, t.s.tokens, id, c)
		}
	}
}

func (t *tx) RevokeTokenFamily(_ context.Context, family uuid.UUID, at time.Time) error {
	t.revokeWhere(func(rt *domain.RefreshToken) bool { return rt.FamilyID == family }, at)
	return nil
}

func (t *tx) RevokeUserTokens(_ context.Context, user uuid.UUID, at time.Time) error {
	t.revokeWhere(func(rt *domain.RefreshToken) bool { return rt.UserID == user }, at)
	return nil
}

// Workspaces.

func (t *tx) CreateWorkspace(_ context.Context, w *domain.Workspace) error {
	if _, ok := t.s.workspaces[w.ID]; ok {
		return domain.Errorf(domain.EConflict, "Workspace exists.")
	}
	set(t, t.s.workspaces, w.ID, clone(w))
	return nil
}

func (t *tx) WorkspaceByID(_ context.Context, id uuid.UUID) (*domain.Workspace, error) {
	w, ok := t.s.workspaces[id]
	if !ok {
		return nil, notFound("Workspace")
	}
	return clone(w), nil
}

func (t *tx) UpdateWorkspace(_ context.Context, w *domain.Workspace) error {
	if _, ok := t.s.workspaces[w.ID]; !ok {
		return notFound("Workspace")
	}
	set(t, t.s.workspaces, w.ID, clone(w))
	return nil
}

func (t *tx) DeleteWorkspace(ctx context.Context, id uuid.UUID) error {
	if _, ok := t.s.workspaces[id]; !ok {
		return notFound("Workspace")
	}
	for pid, p := range t.s.projects {
		if p.WorkspaceID == id {
			if err := t.DeleteProject(ctx, pid); err != nil {
				return err
			}
		}
	}
	for k := range t.s.wsMembers {
		if k.scope == id {
			del(t, t.s.wsMembers, k)
		}
	}
	del(t, t.s.workspaces, id)
	return nil
}

func (t *tx) ListWorkspaces(_ context.Context, user uuid.UUID, p domain.Page) ([]*domain.Workspace, error) {
	var out []*domain.Workspace
	for k := range t.s.wsMembers {
		if k.user == user {
			out = append(out, clone(t.s.workspaces[k.scope]))
		}
	}
	return page(out, func(w *domain.Workspace) uuid.UUID { return w.ID }, p), nil
}

// withProfile fills in the user fields of a membership copy.
func (t *tx) withProfile(m *domain.Member) *domain.Member {
	c := clone(m)
	if u, ok := t.s.users[m.UserID]; ok {
		c.Email, c.DisplayName = u.Email, u.DisplayName
	}
	return c
}

func putMember(t *tx, m map[memberKey]*domain.Member, k memberKey, role domain.Role, at time.Time) {
	if old, ok := m[k]; ok {
		c := clone(old)
		c.Role, c.UpdatedAt = role, at
		set(t, m, k, c)
		return
	}
	set(t, m, k, &domain.Member{UserID: k.user, Role: role, CreatedAt: at, UpdatedAt: at})
}

func (t *tx) PutWorkspaceMember(_ context.Context, ws, user uuid.UUID, role domain.Role, at time.Time) error {
	if _, ok := t.s.workspaces[ws]; !ok {
		return notFound("Workspace")
	}
	if _, ok := t.s.users[user]; !ok {
		return notFound("User")
	}
	putMember(t, t.s.wsMembers, memberKey{ws, user}, role, at)
	return nil
}

func (t *tx) WorkspaceMember(_ context.Context, ws, user uuid.UUID) (*domain.Member, error) {
	m, ok := t.s.wsMembers[memberKey{ws, user}]
	if !ok {
		return nil, notFound("Member")
	}
	return t.withProfile(m), nil
}

func (t *tx) listMembers(m map[memberKey]*domain.Member, scope uuid.UUID, p domain.Page) []*domain.Member {
	var out []*domain.Member
	for k, v := range m {
		if k.scope == scope {
			out = append(out, t.withProfile(v))
		}
	}
	return page(out, func(m *domain.Member) uuid.UUID { return m.UserID }, p)
}

func (t *tx) ListWorkspaceMembers(_ context.Context, ws uuid.UUID, p domain.Page) ([]*domain.Member, error) {
	return t.listMembers(t.s.wsMembers, ws, p), nil
}

func (t *tx) DeleteWorkspaceMember(_ context.Context, ws, user uuid.UUID) error {
	k := memberKey{ws, user}
	if _, ok := t.s.wsMembers[k]; !ok {
		return notFound("Member")
	}
	del(t, t.s.wsMembers, k)
	for pid, p := range t.s.projects {
		if p.WorkspaceID == ws {
			del(t, t.s.projectMembers, memberKey{pid, user})
		}
	}
	return nil
}

func (t *tx) CountWorkspaceOwners(_ context.Context, ws uuid.UUID) (int, error) {
	n := 0
	for k, m := range t.s.wsMembers {
		if k.scope == ws && m.Role == domain.RoleOwner {
			n++
		}
	}
	return n, nil
}

// Projects.

func (t *tx) CreateProject(_ context.Context, p *domain.Project) error {
	if _, ok := t.s.workspaces[p.WorkspaceID]; !ok {
		return notFound("Workspace")
	}
	if _, ok := t.s.projects[p.ID]; ok {
		return domain.Errorf(domain.EConflict, "Project exists.")
	}
	set(t, t.s.projects, p.ID, clone(p))
	return nil
}

func (t *tx) ProjectByID(_ context.Context, id uuid.UUID) (*domain.Project, error) {
	p, ok := t.s.projects[id]
	if !ok {
		return nil, notFound("Project")
	}
	return clone(p), nil
}

func (t *tx) UpdateProject(_ context.Context, p *domain.Project) error {
	if _, ok := t.s.projects[p.ID]; !ok {
		return notFound("Project")
	}
	set(t, t.s.projects, p.ID, clone(p))
	return nil
}

func (t *tx) DeleteProject(ctx context.Context, id uuid.UUID) error {
	if _, ok := t.s.projects[id]; !ok {
		return notFound("Project")
	}
	for cid, c := range t.s.canvases {
		if c.ProjectID == id {
			if err := t.DeleteCanvas(ctx, cid); err != nil {
				return err
			}
		}
	}
	t.deleteProjectDeployments(id)
	t.deleteProjectArtifacts(id)
	for k := range t.s.projectMembers {
		if k.scope == id {
			del(t, t.s.projectMembers, k)
		}
	}
	t.deleteProjectFlags(id)
	del(t, t.s.projects, id)
	return nil
}

func (t *tx) ListProjects(_ context.Context, ws, user uuid.UUID, memberOnly bool, p domain.Page) ([]*domain.Project, error) {
	var out []*domain.Project
	for id, pr := range t.s.projects {
		if pr.WorkspaceID != ws {
			continue
		}
		if memberOnly {
			if _, ok := t.s.projectMembers[memberKey{id, user}]; !ok {
				continue
			}
		}
		out = append(out, clone(pr))
	}
	return page(out, func(p *domain.Project) uuid.UUID { return p.ID }, p), nil
}

func (t *tx) PutProjectMember(_ context.Context, project, user uuid.UUID, role domain.Role, at time.Time) error {
	if _, ok := t.s.projects[project]; !ok {
		return notFound("Project")
	}
	if _, ok := t.s.users[user]; !ok {
		return notFound("User")
	}
	putMember(t, t.s.projectMembers, memberKey{project, user}, role, at)
	return nil
}

func (t *tx) ProjectMember(_ context.Context, project, user uuid.UUID) (*domain.Member, error) {
	m, ok := t.s.projectMembers[memberKey{project, user}]
	if !ok {
		return nil, notFound("Member")
	}
	return t.withProfile(m), nil
}

func (t *tx) ListProjectMembers(_ context.Context, project uuid.UUID, p domain.Page) ([]*domain.Member, error) {
	return t.listMembers(t.s.projectMembers, project, p), nil
}

func (t *tx) DeleteProjectMember(_ context.Context, project, user uuid.UUID) error {
	k := memberKey{project, user}
	if _, ok := t.s.projectMembers[k]; !ok {
		return notFound("Member")
	}
	del(t, t.s.projectMembers, k)
	return nil
}

// Audit.

func (t *tx) AppendAudit(_ context.Context, e *domain.AuditEvent) error {
	if t.actor == uuid.Nil || e.ActorID != t.actor {
		return fmt.Errorf("memory: audit event of actor %s in a transaction of %s", e.ActorID, t.actor)
	}
	e.Seal(t.s.auditHeads[e.ChainID()])
	c := clone(e)
	c.PrevHash, c.Hash = slices.Clone(e.PrevHash), slices.Clone(e.Hash)
	t.s.audit = append(t.s.audit, c)
	n := len(t.s.audit)
	t.undo = append(t.undo, func() { t.s.audit = t.s.audit[:n-1] })
	set(t, t.s.auditHeads, c.Chain, domain.AuditHead{Chain: c.Chain, Seq: c.Seq, Hash: c.Hash})
	return nil
}

func (t *tx) AuditChainHead(_ context.Context, chain uuid.UUID) (domain.AuditHead, error) {
	if !t.mayReadChain(chain) {
		return domain.AuditHead{Chain: chain}, nil
	}
	h, ok := t.s.auditHeads[chain]
	if !ok {
		h.Chain = chain
	}
	return h, nil
}

// mayReadChain mirrors the PostgreSQL policies: the actor's own chain, or
// a workspace they are a member of.
func (t *tx) mayReadChain(chain uuid.UUID) bool {
	return chain == t.actor || t.s.wsMembers[memberKey{chain, t.actor}] != nil
}

func (t *tx) ListAuditChain(_ context.Context, chain uuid.UUID, afterSeq int64, limit int) ([]*domain.AuditEvent, error) {
	var out []*domain.AuditEvent
	if !t.mayReadChain(chain) {
		return nil, nil
	}
	for _, e := range t.s.audit {
		if e.Chain == chain && e.Seq > afterSeq {
			out = append(out, clone(e))
		}
	}
	slices.SortFunc(out, func(a, b *domain.AuditEvent) int { return cmp.Compare(a.Seq, b.Seq) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (t *tx) ListAudit(_ context.Context, f domain.AuditFilter, p domain.Page) ([]*domain.AuditEvent, error) {
	var out []*domain.AuditEvent
	for _, e := range t.s.audit {
		switch {
		case f.WorkspaceID != uuid.Nil && e.WorkspaceID != f.WorkspaceID,
			f.ProjectID != uuid.Nil && e.ProjectID != f.ProjectID,
			f.ActorID != uuid.Nil && e.ActorID != f.ActorID,
			f.Action != "" && e.Action != f.Action,
			f.TargetType != "" && e.TargetType != f.TargetType,
			f.TargetID != "" && e.TargetID != f.TargetID,
			!f.Since.IsZero() && e.Time.Before(f.Since),
			!f.Until.IsZero() && !e.Time.Before(f.Until):
			continue
		}
		out = append(out, clone(e))
	}
	return page(out, func(e *domain.AuditEvent) uuid.UUID { return e.ID }, p), nil
}
