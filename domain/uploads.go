package domain

import (
	"context"
	"io"

	"github.com/google/uuid"
)

// CreateUpload starts a resumable upload of length bytes as an artifact of
// a deployment (who may upload artifacts; see UploadArtifact). Only the
// caller may continue it, and it expires after Config.UploadTTL without an
// append. A length over Config.ArtifactMaxBytes is TooLarge. An upload of
// length 0 is complete at once: the artifact is returned with it.
func (s *Service) CreateUpload(ctx context.Context, c Caller, deploymentID uuid.UUID, in ArtifactInput, length int64) (*Upload, *Artifact, error) {
	if err := s.artifactsReady(); err != nil {
		return nil, nil, err
	}
	in, err := checkArtifactInput(in)
	if err != nil {
		return nil, nil, err
	}
	if length < 0 {
		return nil, nil, Errorf(EInvalid, "Upload-Length must not be negative.").WithDetail("field", "length")
	}
	if length > s.cfg.ArtifactMaxBytes {
		return nil, nil, TooLarge(s.cfg.ArtifactMaxBytes)
	}
	now := s.now()
	u := &Upload{
		ID: newID(), DeploymentID: deploymentID, Name: in.Name, ContentType: in.ContentType, Digest: in.Digest,
		Length: length, CreatedBy: c.ID(), CreatedAt: now, ExpiresAt: now.Add(s.cfg.UploadTTL),
	}
	err = s.store.InTx(ctx, c.ID(), func(tx Tx) error {
		d, ws, err := deploymentForArtifacts(ctx, tx, c, deploymentID, ActArtifactWrite)
		if err != nil {
			return err
		}
		u.ProjectID, u.WorkspaceID = d.ProjectID, ws
		if err := s.cfg.Uploads.CreateUpload(ctx, u); err != nil {
			return err
		}
		ev := s.audit(ctx, c.ID(), "artifact.upload.create", "upload", u.ID.String())
		ev.WorkspaceID, ev.ProjectID = ws, d.ProjectID
		ev.Details = map[string]any{"deployment_id": deploymentID.String(), "name": in.Name, "length": length}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		if u.ProjectID != uuid.Nil {
			_ = s.cfg.Uploads.DeleteUpload(ctx, u.ID) // recording failed: drop it
		}
		return nil, nil, err
	}
	if length == 0 {
		a, err := s.completeUpload(ctx, c, u)
		return u, a, err
	}
	return u, nil, nil
}

// ownUpload returns an upload the caller created, else ENotFound.
func (s *Service) ownUpload(ctx context.Context, c Caller, id uuid.UUID) (*Upload, error) {
	if err := s.artifactsReady(); err != nil {
		return nil, err
	}
	u, err := s.cfg.Uploads.Upload(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.CreatedBy != c.ID() {
		return nil, Errorf(ENotFound, "Upload not found.")
	}
	return u, nil
}

// GetUpload returns an upload of the caller's with its current offset.
// Returns ENotFound if there is none (another caller's uploads included).
func (s *Service) GetUpload(ctx context.Context, c Caller, id uuid.UUID) (*Upload, error) {
	return s.ownUpload(ctx, c, id)
}

// AppendUpload appends what r gives to an upload of the caller's at offset
// (see UploadStore.AppendUpload for offsets, checksums and interrupted
// bodies), and extends its expiry. A body that broke off is EInvalid, and
// the upload with the offset to resume from is returned with the error. When the last byte arrives the content
// moves to the blob store, its SHA-256 is checked against the one given at
// creation (a mismatch is EInvalid and drops the upload), and the artifact
// is recorded and returned; the upload is then gone. An append at the
// final offset with an empty body retries a completion that failed.
func (s *Service) AppendUpload(ctx context.Context, c Caller, id uuid.UUID, offset int64, r io.Reader, sum []byte) (*Upload, *Artifact, error) {
	if _, err := s.ownUpload(ctx, c, id); err != nil {
		return nil, nil, err
	}
	u, err := s.cfg.Uploads.AppendUpload(ctx, id, offset, r, sum, s.now().Add(s.cfg.UploadTTL))
	if err != nil && u != nil {
		return u, nil, Errorf(EInvalid, "The body broke off at offset %d; what arrived is kept, resume from there.", u.Offset).
			WithDetail("offset", u.Offset)
	}
	if err != nil || u.Offset < u.Length {
		return u, nil, err
	}
	a, err := s.completeUpload(ctx, c, u)
	return u, a, err
}

// completeUpload moves a complete upload's content to the blob store and
// records its artifact.
func (s *Service) completeUpload(ctx context.Context, c Caller, u *Upload) (*Artifact, error) {
	content, err := s.cfg.Uploads.OpenUpload(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	info, err := s.cfg.Blobs.Put(ctx, content, PutOptions{MaxBytes: u.Length, Digest: u.Digest})
	content.Close()
	if ErrorCode(err) == EInvalid {
		// The content is not what was announced; nothing of it is kept.
		_ = s.cfg.Uploads.DeleteUpload(ctx, u.ID)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	a, err := s.recordArtifact(ctx, c, u.DeploymentID, ArtifactInput{Name: u.Name, ContentType: u.ContentType}, info)
	if ErrorCode(err) == EConflict || ErrorCode(err) == ENotFound || ErrorCode(err) == EForbidden {
		_ = s.cfg.Uploads.DeleteUpload(ctx, u.ID) // it can never be recorded
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Uploads.DeleteUpload(ctx, u.ID); err != nil && ErrorCode(err) != ENotFound {
		s.cfg.Logger.WarnContext(ctx, "completed upload not removed", "upload_id", u.ID, "err", err)
	}
	return a, nil
}

// CancelUpload drops an upload of the caller's and what it received (tus
// termination).
func (s *Service) CancelUpload(ctx context.Context, c Caller, id uuid.UUID) error {
	u, err := s.ownUpload(ctx, c, id)
	if err != nil {
		return err
	}
	return s.store.InTx(ctx, c.ID(), func(tx Tx) error {
		if err := s.cfg.Uploads.DeleteUpload(ctx, id); err != nil {
			return err
		}
		ev := s.audit(ctx, c.ID(), "artifact.upload.cancel", "upload", id.String())
		ev.WorkspaceID, ev.ProjectID = u.WorkspaceID, u.ProjectID
		ev.Details = map[string]any{"deployment_id": u.DeploymentID.String(), "name": u.Name, "offset": u.Offset, "length": u.Length}
		return tx.AppendAudit(ctx, ev)
	})
}

// ExpireUploads drops the uploads nobody appended to within
// Config.UploadTTL, and returns how many.
func (s *Service) ExpireUploads(ctx context.Context) (int, error) {
	if err := s.artifactsReady(); err != nil {
		return 0, err
	}
	return s.cfg.Uploads.ExpireUploads(ctx, s.now())
}
