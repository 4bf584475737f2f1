package domain

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/google/uuid"
)

// Upload is a resumable upload of an artifact in progress (the tus
// protocol): Length bytes are expected, Offset of them have arrived. When
// the last byte arrives the content moves to the BlobStore and the upload
// becomes an Artifact.
type Upload struct {
	ID           uuid.UUID // UUIDv7
	ProjectID    uuid.UUID
	WorkspaceID  uuid.UUID
	DeploymentID uuid.UUID
	Name         string
	ContentType  string
	Digest       string // the SHA-256 the whole content must have; "" if not given
	Length       int64
	Offset       int64
	CreatedBy    uuid.UUID // the user or deploy token that created it; only it may continue it
	CreatedAt    time.Time
	ExpiresAt    time.Time // when it is dropped unless finished; each append extends it
}

// UploadStore holds the uploads in progress and the bytes received so far.
// Implementations must be safe for concurrent use and keep what
// AppendUpload acknowledged across restarts.
type UploadStore interface {
	// CreateUpload records u (Offset 0) with no content yet. Returns
	// EConflict if its id exists.
	CreateUpload(ctx context.Context, u *Upload) error
	// Upload returns an upload with its current Offset. Returns ENotFound if
	// there is no such upload.
	Upload(ctx context.Context, id uuid.UUID) (*Upload, error)
	// AppendUpload appends what r gives to upload id, whose Offset must be
	// offset (else EConflict with details.offset, the current one), and
	// returns the upload with its new Offset and ExpiresAt set to expires.
	// More bytes than Length-offset is TooLarge and keeps nothing of r.
	// With sum (the SHA-256 of the bytes r should give) set, bytes whose
	// sum differs are ChecksumMismatch and kept nowhere, and so are the
	// bytes of a reader that fails; without it, the bytes read before r
	// failed are kept (the client resumes after them) and the error is
	// returned together with the upload and its new Offset. Returns EConflict if another append to the upload is in
	// progress, and ENotFound if it does not exist.
	AppendUpload(ctx context.Context, id uuid.UUID, offset int64, r io.Reader, sum []byte, expires time.Time) (*Upload, error)
	// OpenUpload returns the content received so far.
	OpenUpload(ctx context.Context, id uuid.UUID) (io.ReadCloser, error)
	// DeleteUpload drops an upload and its content. Returns ENotFound if
	// there is no such upload.
	DeleteUpload(ctx context.Context, id uuid.UUID) error
	// ExpireUploads drops every upload whose ExpiresAt is at or before now
	// and returns how many it dropped.
	ExpireUploads(ctx context.Context, now time.Time) (int, error)
}

// ChecksumMismatch is the error of bytes whose checksum is not the one
// announced: EInvalid with details.checksum "mismatch" (tus answers 460).
func ChecksumMismatch() *Error {
	return Errorf(EInvalid, "The bytes received do not match the checksum given; nothing of them was kept.").
		WithDetail("checksum", "mismatch")
}

// IsChecksumMismatch reports whether err is (or wraps) a ChecksumMismatch.
func IsChecksumMismatch(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == EInvalid && e.Details["checksum"] == "mismatch"
}
