package realtime

import (
	"context"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// ProjectAuthorizer decides what a user may do in a project;
// domain.Service implements it.
type ProjectAuthorizer interface {
	Authorize(ctx context.Context, actor, projectID uuid.UUID, a domain.Action) error
}

// ProjectNamespace serves "project:<project id>": the project's events.
// Members read; editors may also publish their own events, which carry
// their client and user ids (server events carry neither).
type ProjectNamespace struct{ Auth ProjectAuthorizer }

// Authorize implements Namespace.
func (ns ProjectNamespace) Authorize(ctx context.Context, user uuid.UUID, id string, write bool) error {
	pid, err := uuid.Parse(id)
	if err != nil {
		return domain.Errorf(domain.ENotFound, "Project not found.")
	}
	if write {
		return ns.Auth.Authorize(ctx, user, pid, domain.ActCanvasWrite)
	}
	return ns.Auth.Authorize(ctx, user, pid, domain.ActProjectRead)
}

// ServerOnlyProjectNamespace serves channels keyed by a project id that only
// the server publishes to, such as "flags:<project id>".
type ServerOnlyProjectNamespace struct{ Auth ProjectAuthorizer }

// Authorize implements Namespace.
func (ns ServerOnlyProjectNamespace) Authorize(ctx context.Context, user uuid.UUID, id string, write bool) error {
	pid, err := uuid.Parse(id)
	if err != nil {
		return domain.Errorf(domain.ENotFound, "Project not found.")
	}
	if err := ns.Auth.Authorize(ctx, user, pid, domain.ActProjectRead); err != nil {
		return err
	}
	if write {
		return domain.Errorf(domain.EForbidden, "Only the server publishes on this channel.")
	}
	return nil
}

// UserNamespace serves "notifications:<user id>": only that user may
// subscribe, and only the server publishes.
type UserNamespace struct{}

// Authorize implements Namespace.
func (UserNamespace) Authorize(_ context.Context, user uuid.UUID, id string, write bool) error {
	uid, err := uuid.Parse(id)
	if err != nil || uid != user {
		return domain.Errorf(domain.ENotFound, "Channel not found.")
	}
	if write {
		return domain.Errorf(domain.EForbidden, "Only the server publishes on this channel.")
	}
	return nil
}
