package disk_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/disk"
	"github.com/tone-ai/tone/domain/storetest"
)

func TestContract(t *testing.T) {
	storetest.RunBlobStore(t, func(t *testing.T) domain.BlobStore {
		s, err := disk.New(t.TempDir())
		require.NoError(t, err)
		return s
	})
}

// TestNoTempLeft checks that refused and interrupted puts leave no
// temporary file, and that New removes stale ones only.
func TestNoTempLeft(t *testing.T) {
	dir := t.TempDir()
	s, err := disk.New(dir)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Put(ctx, bytes.NewReader(make([]byte, 100)), domain.PutOptions{MaxBytes: 10})
	require.True(t, domain.IsTooLarge(err))
	_, err = s.Put(ctx, bytes.NewReader(make([]byte, 100)), domain.PutOptions{Digest: "0000000000000000000000000000000000000000000000000000000000000000"})
	require.Error(t, err)
	info, err := s.Put(ctx, bytes.NewReader([]byte("hello")), domain.PutOptions{})
	require.NoError(t, err)
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmp)
	assert.FileExists(t, filepath.Join(dir, "sha256", info.Digest[:2], info.Digest))

	stale, fresh := filepath.Join(dir, "tmp", "put-stale"), filepath.Join(dir, "tmp", "put-fresh")
	require.NoError(t, os.WriteFile(stale, []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(fresh, []byte("x"), 0o600))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	_, err = disk.New(dir)
	require.NoError(t, err)
	assert.NoFileExists(t, stale)
	assert.FileExists(t, fresh)
}

func TestUploadsContract(t *testing.T) {
	storetest.RunUploadStore(t, func(t *testing.T) domain.UploadStore {
		s, err := disk.NewUploads(t.TempDir())
		require.NoError(t, err)
		return s
	})
}

// TestUploadsCrashLeftovers checks that bytes a crash left beyond the
// recorded offset are cut off by the next append.
func TestUploadsCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := disk.NewUploads(dir)
	require.NoError(t, err)
	ctx := context.Background()
	u := &domain.Upload{ID: uuid.Must(uuid.NewV7()), Length: 10, ExpiresAt: time.Now().Add(time.Hour)}
	require.NoError(t, s.CreateUpload(ctx, u))
	_, err = s.AppendUpload(ctx, u.ID, 0, bytes.NewReader([]byte("abc")), nil, u.ExpiresAt)
	require.NoError(t, err)
	f, err := os.OpenFile(filepath.Join(dir, u.ID.String()+".bin"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("garbage")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	got, err := s.AppendUpload(ctx, u.ID, 3, bytes.NewReader([]byte("defghij")), nil, u.ExpiresAt)
	require.NoError(t, err)
	assert.Equal(t, int64(10), got.Offset)
	r, err := s.OpenUpload(ctx, u.ID)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "abcdefghij", string(b))
}

// TestUploadsSharedDirectory: two stores on one directory (two processes
// sharing --data-dir) do not append to one upload at once.
func TestUploadsSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	a, err := disk.NewUploads(dir)
	require.NoError(t, err)
	b, err := disk.NewUploads(dir)
	require.NoError(t, err)
	ctx := context.Background()
	u := &domain.Upload{ID: uuid.Must(uuid.NewV7()), Length: 10, ExpiresAt: time.Now().Add(time.Hour)}
	require.NoError(t, a.CreateUpload(ctx, u))

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := a.AppendUpload(ctx, u.ID, 0, pr, nil, u.ExpiresAt)
		done <- err
	}()
	_, err = pw.Write([]byte("abc")) // a is appending now
	require.NoError(t, err)
	_, err = b.AppendUpload(ctx, u.ID, 0, bytes.NewReader([]byte("xyz")), nil, u.ExpiresAt)
	require.Error(t, err)
	assert.Equal(t, domain.EConflict, domain.ErrorCode(err))
	require.NoError(t, pw.Close())
	require.NoError(t, <-done)

	// b sees a's append and continues after it.
	got, err := b.AppendUpload(ctx, u.ID, 3, bytes.NewReader([]byte("defghij")), nil, u.ExpiresAt)
	require.NoError(t, err)
	assert.Equal(t, int64(10), got.Offset)
	r, err := b.OpenUpload(ctx, u.ID)
	require.NoError(t, err)
	content, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "abcdefghij", string(content))
}
