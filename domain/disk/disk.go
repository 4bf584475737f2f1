// Package disk implements domain.BlobStore on a local directory.
//
//	blobs, err := disk.New(filepath.Join(dataDir, "blobs"))
//	info, err := blobs.Put(ctx, body, domain.PutOptions{MaxBytes: 1 << 30})
//	f, info, err := blobs.Open(ctx, info.Digest)
//
// A blob with digest d lives in sha256/d[0:2]/d. Put writes the content to a
// temporary file under tmp/ while hashing it, syncs it to disk, and renames
// it into place, so a blob file is always complete; a crash leaves at most a
// temporary file, which New removes once it is an hour old. The file's
// modification time is the blob's PutAt.
//
// Several processes may share the directory for reading and writing, but
// the atomicity of Delete against Put holds only within one process (one
// Store value): run one garbage collector per directory. A Store is safe for
// concurrent use.
package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tone-ai/tone/domain"
)

// staleTemp is the age after which New removes temporary files left behind.
const staleTemp = time.Hour

// copyBuffer is the size of the buffer Put reads through.
const copyBuffer = 1 << 20

// Store is a domain.BlobStore in a local directory.
type Store struct {
	dir string
	// mu makes "is it stored? then refresh it, else rename it in" in Put
	// and "was it put since? else remove it" in Delete atomic.
	mu   sync.Mutex
	bufs sync.Pool
}

var _ domain.BlobStore = (*Store)(nil)

// New returns the store in dir, creating the directory if needed and
// removing stale temporary files.
func New(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "sha256")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
	}
	s := &Store{dir: dir, bufs: sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}}
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
	return s, nil
}

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

func (s *Store) path(digest string) string {
	return filepath.Join(s.dir, "sha256", digest[:2], digest)
}

// Put implements domain.BlobStore.
func (s *Store) Put(ctx context.Context, r io.Reader, opt domain.PutOptions) (_ domain.BlobInfo, err error) {
	if opt.Digest != "" {
		if err := domain.CheckDigest("digest", opt.Digest); err != nil {
			return domain.BlobInfo{}, err
		}
	}
	f, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	src := r
	if opt.MaxBytes > 0 {
		src = io.LimitReader(r, opt.MaxBytes+1)
	}
	buf := s.bufs.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, src}, *buf)
	s.bufs.Put(buf)
	if err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	if opt.MaxBytes > 0 && n > opt.MaxBytes {
		return domain.BlobInfo{}, domain.TooLarge(opt.MaxBytes)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if opt.Digest != "" && opt.Digest != digest {
		return domain.BlobInfo{}, domain.Errorf(domain.EInvalid, "Content has SHA-256 %s, not the %s given.", digest, opt.Digest).
			WithDetail("field", "digest").WithDetail("actual", digest)
	}
	if err := f.Sync(); err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	f = nil
	return s.commit(tmp, digest, n)
}

// commit moves the complete temporary file tmp into place as blob digest,
// or refreshes the stored copy and drops tmp.
func (s *Store) commit(tmp, digest string, size int64) (domain.BlobInfo, error) {
	final := s.path(digest)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if _, err := os.Stat(final); err == nil {
		if err := os.Chtimes(final, now, now); err != nil {
			return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
		}
		os.Remove(tmp)
		return domain.BlobInfo{Digest: digest, Size: size, PutAt: now}, nil
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	if err := os.Chtimes(tmp, now, now); err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return domain.BlobInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	return domain.BlobInfo{Digest: digest, Size: size, PutAt: now}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) stat(digest string) (string, domain.BlobInfo, error) {
	if err := domain.CheckDigest("digest", digest); err != nil {
		return "", domain.BlobInfo{}, err
	}
	p := s.path(digest)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", domain.BlobInfo{}, domain.Errorf(domain.ENotFound, "Blob not found.")
	}
	if err != nil {
		return "", domain.BlobInfo{}, fmt.Errorf("disk: stat: %w", err)
	}
	return p, domain.BlobInfo{Digest: digest, Size: fi.Size(), PutAt: fi.ModTime()}, nil
}

// Open implements domain.BlobStore.
func (s *Store) Open(_ context.Context, digest string) (io.ReadSeekCloser, domain.BlobInfo, error) {
	p, info, err := s.stat(digest)
	if err != nil {
		return nil, info, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) { // deleted since the stat
		return nil, domain.BlobInfo{}, domain.Errorf(domain.ENotFound, "Blob not found.")
	}
	if err != nil {
		return nil, domain.BlobInfo{}, fmt.Errorf("disk: open: %w", err)
	}
	return f, info, nil
}

// Stat implements domain.BlobStore.
func (s *Store) Stat(_ context.Context, digest string) (domain.BlobInfo, error) {
	_, info, err := s.stat(digest)
	return info, err
}

// Delete implements domain.BlobStore. A reader that opened the blob before
// keeps reading it (the file is unlinked, not truncated).
func (s *Store) Delete(_ context.Context, digest string, notPutSince time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, info, err := s.stat(digest)
	switch {
	case domain.ErrorCode(err) == domain.ENotFound:
		return false, nil
	case err != nil:
		return false, err
	case !info.PutAt.Before(notPutSince):
		return false, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("disk: delete: %w", err)
	}
	return true, nil
}

// List implements domain.BlobStore.
func (s *Store) List(ctx context.Context, fn func(domain.BlobInfo) error) error {
	root := filepath.Join(s.dir, "sha256")
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != root { // removed while walking
				return nil
			}
			return fmt.Errorf("disk: list: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !domain.ValidDigest(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("disk: list: %w", err)
		}
		return fn(domain.BlobInfo{Digest: d.Name(), Size: fi.Size(), PutAt: fi.ModTime()})
	})
}
