package domain

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Artifact limits and defaults.
const (
	MaxArtifactNameLen      = 255
	DefaultArtifactMaxBytes = 1 << 30
	DefaultUploadTTL        = 24 * time.Hour
	DefaultDownloadURLTTL   = 5 * time.Minute
	DefaultBlobGCGrace      = time.Hour
	defaultContentType      = "application/octet-stream"
)

// Artifact events on the project channel.
const (
	EventArtifactCreated = "artifact.created"
	EventArtifactDeleted = "artifact.deleted"
)

// Caller is who makes an artifact request: a signed-in user, or a runner
// (a deploy token) acting on its project's deployments.
type Caller struct {
	UserID uuid.UUID // the user; uuid.Nil for a runner
	Runner *Runner   // the runner; nil for a user
}

// UserCaller is the Caller of a signed-in user.
func UserCaller(id uuid.UUID) Caller { return Caller{UserID: id} }

// RunnerCaller is the Caller of a runner.
func RunnerCaller(r *Runner) Caller { return Caller{Runner: r} }

// ID is the user id, or the deploy token id of a runner: the actor of audit
// events and store transactions.
func (c Caller) ID() uuid.UUID {
	if c.Runner != nil {
		return c.Runner.TokenID
	}
	return c.UserID
}

// ArtifactInput describes an artifact being uploaded.
type ArtifactInput struct {
	Name        string
	ContentType string // default application/octet-stream
	Digest      string // SHA-256 the content must have (lower-case hex); "" to skip the check
}

func checkArtifactInput(in ArtifactInput) (ArtifactInput, error) {
	in.Name = strings.TrimSpace(in.Name)
	n := utf8.RuneCountInString(in.Name)
	if n == 0 || n > MaxArtifactNameLen || !utf8.ValidString(in.Name) || strings.IndexFunc(in.Name, unicode.IsControl) >= 0 {
		return in, Errorf(EInvalid, "name must be 1 to %d printable characters.", MaxArtifactNameLen).WithDetail("field", "name")
	}
	if in.ContentType == "" {
		in.ContentType = defaultContentType
	}
	if len(in.ContentType) > 255 {
		return in, Errorf(EInvalid, "content type is longer than 255 bytes.").WithDetail("field", "content_type")
	}
	if _, _, err := mime.ParseMediaType(in.ContentType); err != nil {
		return in, Errorf(EInvalid, "content type %q is not a media type.", in.ContentType).WithDetail("field", "content_type")
	}
	if in.Digest != "" {
		if err := CheckDigest("sha256", in.Digest); err != nil {
			return in, err
		}
	}
	return in, nil
}

// artifactsReady returns EUnavailable unless the service has a blob store
// and an upload store.
func (s *Service) artifactsReady() error {
	if s.cfg.Blobs == nil || s.cfg.Uploads == nil {
		return Errorf(EUnavailable, "Artifact storage is not configured.")
	}
	return nil
}

// deploymentForArtifacts loads a deployment the caller may do a to: a
// runner's own project's deployments (any artifact action but deleting),
// or for a user, by role. Returns the deployment and its workspace's id.
func deploymentForArtifacts(ctx context.Context, tx Tx, c Caller, id uuid.UUID, a Action) (*Deployment, uuid.UUID, error) {
	if c.Runner != nil {
		if a == ActArtifactDelete {
			return nil, uuid.Nil, Errorf(EForbidden, "Runners may not delete artifacts.")
		}
		d, err := runnerDeployment(ctx, tx, c.Runner, id, false)
		return d, c.Runner.WorkspaceID, err
	}
	d, err := tx.DeploymentByID(ctx, id)
	if ErrorCode(err) == ENotFound {
		return nil, uuid.Nil, notFound("Deployment")
	}
	if err != nil {
		return nil, uuid.Nil, err
	}
	p, role, err := projectAccess(ctx, tx, d.ProjectID, c.UserID)
	if err != nil {
		return nil, uuid.Nil, err
	}
	if err := authorize(role, a, "Deployment"); err != nil {
		return nil, uuid.Nil, err
	}
	return d, p.WorkspaceID, nil
}

// artifactAccess loads an artifact the caller may do a to, and the id of
// its workspace. Returns ENotFound if it is absent or hidden.
func artifactAccess(ctx context.Context, tx Tx, c Caller, id uuid.UUID, a Action) (*Artifact, uuid.UUID, error) {
	art, err := tx.ArtifactByID(ctx, id)
	if ErrorCode(err) == ENotFound {
		return nil, uuid.Nil, notFound("Artifact")
	}
	if err != nil {
		return nil, uuid.Nil, err
	}
	_, ws, err := deploymentForArtifacts(ctx, tx, c, art.DeploymentID, a)
	if ErrorCode(err) == ENotFound {
		return nil, uuid.Nil, notFound("Artifact")
	}
	if err != nil {
		return nil, uuid.Nil, err
	}
	return art, ws, nil
}

func (s *Service) artifactAudit(ctx context.Context, c Caller, action string, a *Artifact, ws uuid.UUID) *AuditEvent {
	ev := s.audit(ctx, c.ID(), action, "artifact", a.ID.String())
	ev.WorkspaceID, ev.ProjectID = ws, a.ProjectID
	ev.Details = map[string]any{"deployment_id": a.DeploymentID.String(), "name": a.Name, "size": a.Size, "digest": a.Digest}
	return ev
}

// UploadArtifact streams body into the blob store and records it as an
// artifact of a deployment (project editors and up, or the project's
// runners). The content is limited to Config.ArtifactMaxBytes (TooLarge)
// and, with in.Digest set, must have that SHA-256 (EInvalid); a refused
// upload keeps nothing. Returns EConflict if the deployment has an
// artifact of that name.
func (s *Service) UploadArtifact(ctx context.Context, c Caller, deploymentID uuid.UUID, in ArtifactInput, body io.Reader) (*Artifact, error) {
	if err := s.artifactsReady(); err != nil {
		return nil, err
	}
	in, err := checkArtifactInput(in)
	if err != nil {
		return nil, err
	}
	// Check first, so that nobody without the right can fill the disk.
	if err := s.store.InTx(ctx, c.ID(), func(tx Tx) error {
		_, _, err := deploymentForArtifacts(ctx, tx, c, deploymentID, ActArtifactWrite)
		return err
	}); err != nil {
		return nil, err
	}
	src := &watchedReader{r: body}
	info, err := s.cfg.Blobs.Put(ctx, src, PutOptions{MaxBytes: s.cfg.ArtifactMaxBytes, Digest: in.Digest})
	if err != nil && src.err != nil && ErrorCode(err) == EInternal {
		return nil, Errorf(EInvalid, "The content broke off after %d bytes; nothing was kept.", src.n)
	}
	if err != nil {
		return nil, err
	}
	// If recording fails, the blob is left unreferenced for the collector.
	return s.recordArtifact(ctx, c, deploymentID, in, info)
}

// watchedReader remembers how much its reader gave and the error it
// failed with, so that a body that broke off is told from a failing store.
type watchedReader struct {
	r   io.Reader
	n   int64
	err error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n += int64(n)
	if err != nil && err != io.EOF {
		w.err = err
	}
	return n, err
}

// ArtifactMaxBytes is the largest artifact the service accepts.
func (s *Service) ArtifactMaxBytes() int64 { return s.cfg.ArtifactMaxBytes }

// recordArtifact records a stored blob as an artifact of a deployment.
func (s *Service) recordArtifact(ctx context.Context, c Caller, deploymentID uuid.UUID, in ArtifactInput, info BlobInfo) (*Artifact, error) {
	var a *Artifact
	err := s.inTx(ctx, c.ID(), func(tx Tx) error {
		d, ws, err := deploymentForArtifacts(ctx, tx, c, deploymentID, ActArtifactWrite)
		if err != nil {
			return err
		}
		a = &Artifact{
			ID: newID(), ProjectID: d.ProjectID, DeploymentID: d.ID, Name: in.Name, Size: info.Size,
			Digest: info.Digest, ContentType: in.ContentType, CreatedBy: c.ID(), CreatedAt: s.now(),
		}
		if err := tx.CreateArtifact(ctx, a); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, c.ID(), ProjectChannel(d.ProjectID), EventArtifactCreated, map[string]any{
			"artifact_id": a.ID, "deployment_id": d.ID, "project_id": d.ProjectID, "name": a.Name,
			"size": a.Size, "digest": a.Digest, "content_type": a.ContentType,
		}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.artifactAudit(ctx, c, "artifact.create", a, ws))
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// ListArtifacts lists a deployment's artifacts (anyone who can see the
// deployment), a page at a time, and the cursor of the next page.
func (s *Service) ListArtifacts(ctx context.Context, c Caller, deploymentID uuid.UUID, opt ListOptions) ([]*Artifact, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var as []*Artifact
	err = s.store.InTx(ctx, c.ID(), func(tx Tx) error {
		if _, _, err := deploymentForArtifacts(ctx, tx, c, deploymentID, ActArtifactRead); err != nil {
			return err
		}
		as, err = tx.ListArtifacts(ctx, deploymentID, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	as, next := nextCursor(as, limit, func(a *Artifact) uuid.UUID { return a.ID })
	return as, next, nil
}

// GetArtifact returns an artifact's metadata. Returns ENotFound if it does
// not exist or the caller cannot see its deployment.
func (s *Service) GetArtifact(ctx context.Context, c Caller, id uuid.UUID) (*Artifact, error) {
	var a *Artifact
	err := s.store.InTx(ctx, c.ID(), func(tx Tx) (err error) {
		a, _, err = artifactAccess(ctx, tx, c, id, ActArtifactRead)
		return err
	})
	return a, err
}

// DeleteArtifact deletes an artifact's metadata (project admins and up;
// not runners). Its blob goes when no artifact refers to it any more, at
// the collector's next round.
func (s *Service) DeleteArtifact(ctx context.Context, actor, id uuid.UUID) error {
	c := UserCaller(actor)
	return s.inTx(ctx, actor, func(tx Tx) error {
		a, ws, err := artifactAccess(ctx, tx, c, id, ActArtifactDelete)
		if err != nil {
			return err
		}
		if err := tx.DeleteArtifact(ctx, id); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(a.ProjectID), EventArtifactDeleted, map[string]any{
			"artifact_id": a.ID, "deployment_id": a.DeploymentID, "project_id": a.ProjectID, "name": a.Name,
		}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.artifactAudit(ctx, c, "artifact.delete", a, ws))
	})
}

// SignArtifactDownload returns the signed query (for path, the URL path
// that serves the artifact's content) that lets the caller download an
// artifact with GET until the returned time, without other credentials.
func (s *Service) SignArtifactDownload(ctx context.Context, c Caller, id uuid.UUID, path string) (*Artifact, string, time.Time, error) {
	a, err := s.GetArtifact(ctx, c, id)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	expires := s.now().Add(s.cfg.DownloadURLTTL).Truncate(time.Second)
	return a, s.cfg.URLSigner.Sign("GET", path, c.ID(), expires), expires, nil
}

// OpenArtifactDownload checks a signed download request (method, path and
// query q as received) of artifact id, records the download in the audit
// log, and returns the artifact and its content. A bad, tampered or
// expired signature is EForbidden. The signer must still be allowed to read
// the artifact: a user still a member, a runner's token not revoked.
func (s *Service) OpenArtifactDownload(ctx context.Context, method, path string, q url.Values, id uuid.UUID) (*Artifact, io.ReadSeekCloser, error) {
	if err := s.artifactsReady(); err != nil {
		return nil, nil, err
	}
	signer, err := s.cfg.URLSigner.Verify(method, path, q, s.now())
	if err != nil {
		return nil, nil, err
	}
	var a *Artifact
	var ws uuid.UUID
	var c Caller
	err = s.store.InTx(ctx, signer, func(tx Tx) error {
		c, err = signedCaller(ctx, tx, signer)
		if err != nil {
			return err
		}
		a, ws, err = artifactAccess(ctx, tx, c, id, ActArtifactRead)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	content, _, err := s.cfg.Blobs.Open(ctx, a.Digest)
	if ErrorCode(err) == ENotFound {
		return nil, nil, errors.New("artifact " + a.ID.String() + ": blob " + a.Digest + " is missing")
	}
	if err != nil {
		return nil, nil, err
	}
	err = s.store.InTx(ctx, signer, func(tx Tx) error {
		return tx.AppendAudit(ctx, s.artifactAudit(ctx, c, "artifact.download", a, ws))
	})
	if err != nil {
		content.Close()
		return nil, nil, err
	}
	return a, content, nil
}

// signedCaller returns the Caller a download URL was signed for: the
// runner of a live deploy token with that id, else the user.
func signedCaller(ctx context.Context, tx Tx, id uuid.UUID) (Caller, error) {
	t, err := tx.DeployTokenByID(ctx, id)
	switch {
	case ErrorCode(err) == ENotFound:
		return UserCaller(id), nil
	case err != nil:
		return Caller{}, err
	case t.RevokedAt != nil:
		return Caller{}, Errorf(EForbidden, "This link's deploy token was revoked.")
	}
	return RunnerCaller(&Runner{TokenID: t.ID, ProjectID: t.ProjectID, WorkspaceID: t.WorkspaceID}), nil
}

// CollectBlobs deletes the blobs that no artifact refers to and that were
// not put within Config.BlobGCGrace (an upload between storing its blob
// and recording its artifact is younger than that), and returns how many
// it deleted and their bytes.
func (s *Service) CollectBlobs(ctx context.Context) (deleted int, bytes int64, err error) {
	if err := s.artifactsReady(); err != nil {
		return 0, 0, err
	}
	cutoff := s.cfg.Now().Add(-s.cfg.BlobGCGrace)
	var old []BlobInfo
	if err := s.cfg.Blobs.List(ctx, func(b BlobInfo) error {
		if b.PutAt.Before(cutoff) {
			old = append(old, b)
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}
	const batch = 500
	for len(old) > 0 {
		n := min(batch, len(old))
		chunk := old[:n]
		old = old[n:]
		digests := make([]string, len(chunk))
		size := map[string]int64{}
		for i, b := range chunk {
			digests[i], size[b.Digest] = b.Digest, b.Size
		}
		var unref []string
		if err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) (err error) {
			unref, err = tx.UnreferencedDigests(ctx, digests)
			return err
		}); err != nil {
			return deleted, bytes, err
		}
		for _, d := range unref {
			// A blob put again since the cutoff is being referenced anew.
			ok, err := s.cfg.Blobs.Delete(ctx, d, cutoff)
			if err != nil {
				return deleted, bytes, err
			}
			if ok {
				deleted++
				bytes += size[d]
			}
		}
	}
	return deleted, bytes, nil
}

// RunBlobGC collects unreferenced blobs (CollectBlobs) and expired uploads
// (ExpireUploads) every interval until ctx is done, logging what it did.
func (s *Service) RunBlobGC(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		n, size, err := s.CollectBlobs(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.ErrorContext(ctx, "blob garbage collection", "err", err, "deleted", n)
		case n > 0:
			s.cfg.Logger.InfoContext(ctx, "blobs collected", "deleted", n, "bytes", size)
		}
		expired, err := s.ExpireUploads(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.ErrorContext(ctx, "upload expiry", "err", err)
		case expired > 0:
			s.cfg.Logger.InfoContext(ctx, "abandoned uploads dropped", "uploads", expired)
		}
	})
}
