package domain

import (
	"context"
	"errors"
	"io"
	"time"
)

// BlobInfo describes one blob of a BlobStore.
type BlobInfo struct {
	Digest string // SHA-256 of the content, 64 lower-case hex digits
	Size   int64
	// PutAt is when the blob was last written or deduplicated by Put; the
	// garbage collector spares blobs put since it started looking.
	PutAt time.Time
}

// PutOptions bound and check one BlobStore.Put.
type PutOptions struct {
	// MaxBytes is the largest content accepted; 0 means no limit.
	MaxBytes int64
	// Digest, if not "", is the SHA-256 (lower-case hex) the content must
	// have.
	Digest string
}

// BlobStore holds contents addressed by their SHA-256: equal contents are
// stored once. Implementations must be safe for concurrent use; the local
// disk store is package domain/disk, and an S3-compatible one can be added
// behind the same contract (domain/storetest.RunBlobStore).
type BlobStore interface {
	// Put streams r into the store, computing the SHA-256 on the way in,
	// and returns the blob's info. Content over opt.MaxBytes is refused
	// with TooLarge as soon as the limit is passed, without reading the
	// rest; content whose digest differs from opt.Digest is EInvalid.
	// Either way, and when r fails, nothing is kept. Putting content that
	// is already stored keeps one copy and refreshes its PutAt.
	Put(ctx context.Context, r io.Reader, opt PutOptions) (BlobInfo, error)
	// Open returns the content of a blob, to be read and sought, and its
	// info. Returns ENotFound if absent, EInvalid if digest is malformed.
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, BlobInfo, error)
	// Stat returns a blob's info. Returns ENotFound if absent, EInvalid if
	// digest is malformed.
	Stat(ctx context.Context, digest string) (BlobInfo, error)
	// Delete removes a blob unless it was put at or after notPutSince,
	// atomically with respect to Put, and reports whether it removed it.
	// A missing blob is not an error (false).
	Delete(ctx context.Context, digest string, notPutSince time.Time) (bool, error)
	// List calls fn for every stored blob, in no particular order, until fn
	// returns an error, which List returns.
	List(ctx context.Context, fn func(BlobInfo) error) error
}

// ValidDigest reports whether d is a SHA-256 digest as blob stores name
// blobs: 64 lower-case hex digits.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := range len(d) {
		c := d[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckDigest returns EInvalid naming field unless d is a valid digest.
func CheckDigest(field, d string) error {
	if !ValidDigest(d) {
		return Errorf(EInvalid, "%s must be a SHA-256 digest: 64 lower-case hex digits.", field).WithDetail("field", field)
	}
	return nil
}

// TooLarge is the error of content over a size limit of max bytes: EInvalid
// with details.max_bytes, which HTTP answers with 413.
func TooLarge(max int64) *Error {
	return Errorf(EInvalid, "Content is larger than the limit of %d bytes.", max).WithDetail("max_bytes", max)
}

// IsTooLarge reports whether err is (or wraps) a TooLarge error.
func IsTooLarge(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Code != EInvalid {
		return false
	}
	_, ok := e.Details["max_bytes"]
	return ok
}
