package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// Uploads is a domain.UploadStore in a local directory: upload id keeps its
// record in id.json and the bytes received in id.bin. An append writes and
// syncs the bytes, then replaces the record (write, sync, rename), so the
// record's Offset never counts bytes that are not on disk; bytes beyond it,
// left by a crash, are cut off by the next append. Appends to one upload
// are serialised within the process, and across processes sharing the
// directory by an advisory lock on the content file (flock, on Unix).
// Uploads is safe for concurrent use.
type Uploads struct {
	dir  string
	mu   sync.Mutex
	busy map[uuid.UUID]bool // uploads with an append in progress
}

var _ domain.UploadStore = (*Uploads)(nil)

// NewUploads returns the upload store in dir, creating it if needed.
func NewUploads(dir string) (*Uploads, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	return &Uploads{dir: dir, busy: map[uuid.UUID]bool{}}, nil
}

func (s *Uploads) record(id uuid.UUID) string { return filepath.Join(s.dir, id.String()+".json") }
func (s *Uploads) data(id uuid.UUID) string   { return filepath.Join(s.dir, id.String()+".bin") }

var errNoUpload = domain.Errorf(domain.ENotFound, "Upload not found.")

func (s *Uploads) load(id uuid.UUID) (*domain.Upload, error) {
	b, err := os.ReadFile(s.record(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoUpload
	}
	if err != nil {
		return nil, fmt.Errorf("disk: upload %s: %w", id, err)
	}
	var u domain.Upload
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("disk: upload %s: %w", id, err)
	}
	return &u, nil
}

// save replaces the record of u atomically and durably.
func (s *Uploads) save(u *domain.Upload) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "record-*")
	if err != nil {
		return fmt.Errorf("disk: upload %s: %w", u.ID, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.record(u.ID))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("disk: upload %s: %w", u.ID, err)
	}
	return nil
}

// CreateUpload implements domain.UploadStore.
func (s *Uploads) CreateUpload(_ context.Context, u *domain.Upload) error {
	f, err := os.OpenFile(s.data(u.ID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrExist) {
		return domain.Errorf(domain.EConflict, "Upload %s exists.", u.ID)
	}
	if err != nil {
		return fmt.Errorf("disk: create upload: %w", err)
	}
	f.Close()
	c := *u
	c.Offset = 0
	if err := s.save(&c); err != nil {
		os.Remove(s.data(u.ID))
		return err
	}
	u.Offset = 0
	return nil
}

// Upload implements domain.UploadStore.
func (s *Uploads) Upload(_ context.Context, id uuid.UUID) (*domain.Upload, error) {
	return s.load(id)
}

// lock marks upload id busy, or returns EConflict if it is.
func (s *Uploads) lock(id uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[id] {
		return domain.Errorf(domain.EConflict, "Another request is appending to this upload.")
	}
	s.busy[id] = true
	return nil
}

func (s *Uploads) unlock(id uuid.UUID) {
	s.mu.Lock()
	delete(s.busy, id)
	s.mu.Unlock()
}

// AppendUpload implements domain.UploadStore.
func (s *Uploads) AppendUpload(ctx context.Context, id uuid.UUID, offset int64, r io.Reader, sum []byte, expires time.Time) (*domain.Upload, error) {
	if err := s.lock(id); err != nil {
		return nil, err
	}
	defer s.unlock(id)
	u, err := s.load(id)
	if err != nil {
		return nil, err
	}
	if offset != u.Offset {
		return nil, domain.Errorf(domain.EConflict, "Upload-Offset is %d, but the upload has %d bytes.", offset, u.Offset).
			WithDetail("offset", u.Offset)
	}
	f, err := os.OpenFile(s.data(id), os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("disk: append upload %s: %w", id, err)
	}
	defer f.Close()
	switch locked, err := tryLock(f); {
	case err != nil:
		return nil, fmt.Errorf("disk: lock upload %s: %w", id, err)
	case !locked:
		return nil, domain.Errorf(domain.EConflict, "Another request is appending to this upload.")
	}
	// Read the record again under the file lock: another process may have
	// appended since.
	if u, err = s.load(id); err != nil {
		return nil, err
	}
	if offset != u.Offset {
		return nil, domain.Errorf(domain.EConflict, "Upload-Offset is %d, but the upload has %d bytes.", offset, u.Offset).
			WithDetail("offset", u.Offset)
	}
	// Cut off whatever a crash left beyond the acknowledged offset, and
	// whatever this call wrote if it fails.
	rollback := func() { _ = f.Truncate(u.Offset) }
	rollback()
	if _, err := f.Seek(u.Offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("disk: append upload %s: %w", id, err)
	}
	remaining := u.Length - u.Offset
	var h hash.Hash
	var w io.Writer = f
	if sum != nil {
		h = sha256.New()
		w = io.MultiWriter(f, h)
	}
	n, rerr := io.Copy(w, ctxReader{ctx, io.LimitReader(r, remaining+1)})
	switch {
	case n > remaining:
		rollback()
		return nil, domain.TooLarge(remaining)
	case rerr != nil && (sum != nil || n == 0):
		rollback()
		return nil, fmt.Errorf("disk: append upload %s: %w", id, rerr)
	case rerr == nil && sum != nil && !bytes.Equal(h.Sum(nil), sum):
		rollback()
		return nil, domain.ChecksumMismatch()
	}
	if err := f.Sync(); err != nil {
		rollback()
		return nil, fmt.Errorf("disk: append upload %s: %w", id, err)
	}
	u.Offset += n
	u.ExpiresAt = expires
	if err := s.save(u); err != nil {
		return nil, err
	}
	if rerr != nil {
		return u, fmt.Errorf("disk: append upload %s: kept %d bytes: %w", id, n, rerr)
	}
	return u, nil
}

// OpenUpload implements domain.UploadStore.
func (s *Uploads) OpenUpload(_ context.Context, id uuid.UUID) (io.ReadCloser, error) {
	u, err := s.load(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.data(id))
	if err != nil {
		return nil, fmt.Errorf("disk: open upload %s: %w", id, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, u.Offset), f}, nil
}

// DeleteUpload implements domain.UploadStore.
func (s *Uploads) DeleteUpload(_ context.Context, id uuid.UUID) error {
	err := os.Remove(s.record(id))
	if errors.Is(err, fs.ErrNotExist) {
		return errNoUpload
	}
	if err != nil {
		return fmt.Errorf("disk: delete upload %s: %w", id, err)
	}
	if err := os.Remove(s.data(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: delete upload %s: %w", id, err)
	}
	return nil
}

// ExpireUploads implements domain.UploadStore. It also removes content
// files whose record is gone (a crash between the two removals of
// DeleteUpload) and record temporaries older than an hour.
func (s *Uploads) ExpireUploads(ctx context.Context, now time.Time) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("disk: expire uploads: %w", err)
	}
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".json"):
			id, err := uuid.Parse(strings.TrimSuffix(name, ".json"))
			if err != nil {
				continue
			}
			u, err := s.load(id)
			if err != nil || u.ExpiresAt.After(now) || s.lock(id) != nil {
				continue
			}
			err = s.DeleteUpload(ctx, id)
			s.unlock(id)
			if err == nil {
				n++
			}
		case strings.HasSuffix(name, ".bin"):
			id, err := uuid.Parse(strings.TrimSuffix(name, ".bin"))
			if err != nil {
				continue
			}
			if _, err := os.Stat(s.record(id)); errors.Is(err, fs.ErrNotExist) {
				if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTemp {
					os.Remove(s.data(id))
				}
			}
		case strings.HasPrefix(name, "record-"):
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTemp {
				os.Remove(filepath.Join(s.dir, name))
			}
		}
	}
	return n, nil
}
