package storetest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// RunUploadStore runs the contract suite of domain.UploadStore; newStore
// must return an empty store.
func RunUploadStore(t *testing.T, newStore func(t *testing.T) domain.UploadStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.UploadStore)
	}{
		{"Append", testUploadAppend},
		{"Checksum", testUploadChecksum},
		{"Interrupted", testUploadInterrupted},
		{"TooMuch", testUploadTooMuch},
		{"Busy", testUploadBusy},
		{"DeleteExpire", testUploadDeleteExpire},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) { test.fn(t, newStore(t)) })
	}
}

func newUpload(t *testing.T, s domain.UploadStore, length int64, expires time.Time) *domain.Upload {
	t.Helper()
	u := &domain.Upload{
		ID: id(), ProjectID: id(), WorkspaceID: id(), DeploymentID: id(), Name: "dist.tar.gz",
		ContentType: "application/gzip", Length: length, CreatedBy: id(), CreatedAt: now, ExpiresAt: expires,
	}
	require.NoError(t, s.CreateUpload(ctx, u))
	return u
}

func uploadContent(t *testing.T, s domain.UploadStore, id uuid.UUID) []byte {
	t.Helper()
	r, err := s.OpenUpload(ctx, id)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func testUploadAppend(t *testing.T, s domain.UploadStore) {
	data := randomBytes(10000)
	u := newUpload(t, s, int64(len(data)), now.Add(time.Hour))
	code(t, domain.EConflict, s.CreateUpload(ctx, u), "same id twice")

	got, err := s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, u, got)
	assert.Empty(t, uploadContent(t, s, u.ID))

	later := now.Add(2 * time.Hour)
	got, err = s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(data[:4000]), nil, later)
	require.NoError(t, err)
	assert.Equal(t, int64(4000), got.Offset)
	assert.True(t, later.Equal(got.ExpiresAt))

	_, err = s.AppendUpload(ctx, u.ID, 3000, bytes.NewReader(data[3000:]), nil, later)
	code(t, domain.EConflict, err, "wrong offset")
	assert.Equal(t, int64(4000), domain.ErrorDetails(err)["offset"])
	_, err = s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(data), nil, later)
	code(t, domain.EConflict, err, "offset 0 again")

	got, err = s.AppendUpload(ctx, u.ID, 4000, bytes.NewReader(nil), nil, later)
	require.NoError(t, err, "an empty append is harmless")
	assert.Equal(t, int64(4000), got.Offset)

	got, err = s.AppendUpload(ctx, u.ID, 4000, bytes.NewReader(data[4000:]), nil, later)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), got.Offset)
	assert.True(t, bytes.Equal(data, uploadContent(t, s, u.ID)))

	got, err = s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), got.Offset)

	_, err = s.Upload(ctx, id())
	code(t, domain.ENotFound, err)
	_, err = s.AppendUpload(ctx, id(), 0, bytes.NewReader(data), nil, later)
	code(t, domain.ENotFound, err)
	_, err = s.OpenUpload(ctx, id())
	code(t, domain.ENotFound, err)
}

func testUploadChecksum(t *testing.T, s domain.UploadStore) {
	data := randomBytes(3000)
	u := newUpload(t, s, int64(len(data)), now.Add(time.Hour))
	good := sha256.Sum256(data[:1000])
	got, err := s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(data[:1000]), good[:], now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(1000), got.Offset)

	bad := sha256.Sum256([]byte("other"))
	_, err = s.AppendUpload(ctx, u.ID, 1000, bytes.NewReader(data[1000:]), bad[:], now.Add(time.Hour))
	code(t, domain.EInvalid, err)
	assert.True(t, domain.IsChecksumMismatch(err), "%v", err)
	got, err = s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), got.Offset, "nothing kept of a mismatching chunk")
	assert.True(t, bytes.Equal(data[:1000], uploadContent(t, s, u.ID)))

	// A failing reader with a checksum keeps nothing either.
	_, err = s.AppendUpload(ctx, u.ID, 1000, &failing{n: 500}, bad[:], now.Add(time.Hour))
	require.Error(t, err)
	got, err = s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), got.Offset)

	rest := sha256.Sum256(data[1000:])
	got, err = s.AppendUpload(ctx, u.ID, 1000, bytes.NewReader(data[1000:]), rest[:], now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(3000), got.Offset)
	assert.True(t, bytes.Equal(data, uploadContent(t, s, u.ID)))
}

func testUploadInterrupted(t *testing.T, s domain.UploadStore) {
	data := randomBytes(50000)
	u := newUpload(t, s, int64(len(data)), now.Add(time.Hour))
	// The connection drops after 12345 bytes: they are kept, and the
	// client resumes from there.
	got, err := s.AppendUpload(ctx, u.ID, 0, io.MultiReader(bytes.NewReader(data[:12345]), &failing{}), nil, now.Add(time.Hour))
	require.Error(t, err)
	require.NotNil(t, got)
	assert.Equal(t, int64(12345), got.Offset)
	got, err = s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(12345), got.Offset)

	got, err = s.AppendUpload(ctx, u.ID, 12345, bytes.NewReader(data[12345:]), nil, now.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), got.Offset)
	assert.True(t, bytes.Equal(data, uploadContent(t, s, u.ID)))
}

func testUploadTooMuch(t *testing.T, s domain.UploadStore) {
	u := newUpload(t, s, 100, now.Add(time.Hour))
	_, err := s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(randomBytes(60)), nil, now.Add(time.Hour))
	require.NoError(t, err)
	_, err = s.AppendUpload(ctx, u.ID, 60, bytes.NewReader(randomBytes(41)), nil, now.Add(time.Hour))
	assert.True(t, domain.IsTooLarge(err), "%v", err)
	got, err := s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(60), got.Offset, "nothing kept of an append past the length")
	assert.Len(t, uploadContent(t, s, u.ID), 60)
}

func testUploadBusy(t *testing.T, s domain.UploadStore) {
	u := newUpload(t, s, 1000, now.Add(time.Hour))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendUpload(ctx, u.ID, 0, pr, nil, now.Add(time.Hour))
		done <- err
	}()
	_, err := pw.Write(randomBytes(10)) // the first append is reading now
	require.NoError(t, err)
	_, err = s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(randomBytes(10)), nil, now.Add(time.Hour))
	code(t, domain.EConflict, err, "a second append while one runs")
	require.NoError(t, pw.Close())
	require.NoError(t, <-done)
	got, err := s.Upload(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(10), got.Offset)
}

func testUploadDeleteExpire(t *testing.T, s domain.UploadStore) {
	a := newUpload(t, s, 10, now.Add(time.Minute))
	b := newUpload(t, s, 10, now.Add(time.Hour))
	c := newUpload(t, s, 10, now.Add(2*time.Hour))
	require.NoError(t, s.DeleteUpload(ctx, c.ID))
	code(t, domain.ENotFound, s.DeleteUpload(ctx, c.ID))
	_, err := s.Upload(ctx, c.ID)
	code(t, domain.ENotFound, err)

	n, err := s.ExpireUploads(ctx, now)
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = s.ExpireUploads(ctx, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "expired at or before now")
	_, err = s.Upload(ctx, a.ID)
	code(t, domain.ENotFound, err)
	_, err = s.Upload(ctx, b.ID)
	require.NoError(t, err)

	// An append pushes the expiry.
	_, err = s.AppendUpload(ctx, b.ID, 0, bytes.NewReader([]byte("abc")), nil, now.Add(3*time.Hour))
	require.NoError(t, err)
	n, err = s.ExpireUploads(ctx, now.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = s.Upload(ctx, b.ID)
	require.NoError(t, err)
}
