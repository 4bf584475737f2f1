package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// RunBlobStore runs the contract suite of domain.BlobStore; newStore must
// return an empty store.
func RunBlobStore(t *testing.T, newStore func(t *testing.T) domain.BlobStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.BlobStore)
	}{
		{"PutOpenStat", testBlobPutOpen},
		{"Dedup", testBlobDedup},
		{"SizeLimit", testBlobSizeLimit},
		{"Digest", testBlobDigest},
		{"ReaderFails", testBlobReaderFails},
		{"Missing", testBlobMissing},
		{"Delete", testBlobDelete},
		{"Concurrent", testBlobConcurrent},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) { test.fn(t, newStore(t)) })
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func listBlobs(t *testing.T, s domain.BlobStore) map[string]domain.BlobInfo {
	t.Helper()
	out := map[string]domain.BlobInfo{}
	require.NoError(t, s.List(ctx, func(b domain.BlobInfo) error {
		out[b.Digest] = b
		return nil
	}))
	return out
}

func readBlob(t *testing.T, s domain.BlobStore, digest string) []byte {
	t.Helper()
	r, _, err := s.Open(ctx, digest)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func testBlobPutOpen(t *testing.T, s domain.BlobStore) {
	data := randomBytes(3<<20 + 17) // more than one copy buffer
	before := time.Now().Add(-time.Second)
	info, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{})
	require.NoError(t, err)
	assert.Equal(t, sha(data), info.Digest)
	assert.Equal(t, int64(len(data)), info.Size)
	assert.False(t, info.PutAt.Before(before), "PutAt %v", info.PutAt)

	st, err := s.Stat(ctx, info.Digest)
	require.NoError(t, err)
	assert.Equal(t, info.Digest, st.Digest)
	assert.Equal(t, info.Size, st.Size)

	r, oi, err := s.Open(ctx, info.Digest)
	require.NoError(t, err)
	assert.Equal(t, info.Size, oi.Size)
	_, err = r.Seek(1000, io.SeekStart)
	require.NoError(t, err)
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.True(t, bytes.Equal(data[1000:], rest), "content after seeking differs")
	assert.True(t, bytes.Equal(data, readBlob(t, s, info.Digest)))

	empty, err := s.Put(ctx, bytes.NewReader(nil), domain.PutOptions{MaxBytes: 10})
	require.NoError(t, err)
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", empty.Digest)
	assert.Zero(t, empty.Size)
	assert.Empty(t, readBlob(t, s, empty.Digest))

	assert.ElementsMatch(t, []string{info.Digest, empty.Digest}, keysOf(listBlobs(t, s)))
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func testBlobDedup(t *testing.T, s domain.BlobStore) {
	data := randomBytes(1000)
	a, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{})
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	b, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{Digest: a.Digest})
	require.NoError(t, err)
	assert.Equal(t, a.Digest, b.Digest)
	assert.True(t, b.PutAt.After(a.PutAt), "a second Put refreshes PutAt: %v then %v", a.PutAt, b.PutAt)
	st, err := s.Stat(ctx, a.Digest)
	require.NoError(t, err)
	assert.False(t, st.PutAt.Before(a.PutAt.Add(10*time.Millisecond)), "stored PutAt %v not refreshed", st.PutAt)
	assert.Len(t, listBlobs(t, s), 1)
	assert.True(t, bytes.Equal(data, readBlob(t, s, a.Digest)))
}

// endless is a reader that never ends and counts what it gave.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e.n + int64(i))
	}
	e.n += int64(len(p))
	return len(p), nil
}

func testBlobSizeLimit(t *testing.T, s domain.BlobStore) {
	data := randomBytes(4096)
	info, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{MaxBytes: 4096})
	require.NoError(t, err, "exactly the limit is accepted")
	assert.Equal(t, int64(4096), info.Size)

	_, err = s.Put(ctx, bytes.NewReader(randomBytes(4097)), domain.PutOptions{MaxBytes: 4096})
	code(t, domain.EInvalid, err)
	assert.True(t, domain.IsTooLarge(err), "%v", err)

	// An endless body is refused once past the limit: the store neither
	// buffers it whole nor reads far beyond the limit.
	const limit = 8 << 20
	src := &endless{}
	_, err = s.Put(ctx, src, domain.PutOptions{MaxBytes: limit})
	assert.True(t, domain.IsTooLarge(err), "%v", err)
	assert.LessOrEqual(t, src.n, int64(limit+4<<20), "read %d bytes for a limit of %d", src.n, limit)

	assert.Equal(t, []string{info.Digest}, keysOf(listBlobs(t, s)), "nothing kept of refused content")
}

func testBlobDigest(t *testing.T, s domain.BlobStore) {
	data := randomBytes(5000)
	wrong := sha([]byte("something else"))
	_, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{Digest: wrong})
	code(t, domain.EInvalid, err)
	assert.False(t, domain.IsTooLarge(err))
	assert.Empty(t, listBlobs(t, s), "nothing kept on a digest mismatch")

	_, err = s.Put(ctx, bytes.NewReader(data), domain.PutOptions{Digest: "ABC"})
	code(t, domain.EInvalid, err)
	_, err = s.Put(ctx, bytes.NewReader(data), domain.PutOptions{Digest: strings.ToUpper(sha(data))})
	code(t, domain.EInvalid, err, "digests are lower-case hex")

	info, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{Digest: sha(data)})
	require.NoError(t, err)
	assert.Equal(t, sha(data), info.Digest)
}

// failing gives n bytes, then fails.
type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func testBlobReaderFails(t *testing.T, s domain.BlobStore) {
	_, err := s.Put(ctx, &failing{n: 100000}, domain.PutOptions{})
	require.Error(t, err)
	assert.Empty(t, listBlobs(t, s), "nothing kept of an interrupted Put")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cctx, bytes.NewReader(randomBytes(100)), domain.PutOptions{})
	require.Error(t, err, "a cancelled context stops Put")
	assert.Empty(t, listBlobs(t, s))
}

func testBlobMissing(t *testing.T, s domain.BlobStore) {
	missing := sha([]byte("never stored"))
	_, err := s.Stat(ctx, missing)
	code(t, domain.ENotFound, err)
	_, _, err = s.Open(ctx, missing)
	code(t, domain.ENotFound, err)
	for _, bad := range []string{"", "xyz", "../../etc/passwd", missing[:63], missing + "0"} {
		_, err = s.Stat(ctx, bad)
		code(t, domain.EInvalid, err, bad)
		_, _, err = s.Open(ctx, bad)
		code(t, domain.EInvalid, err, bad)
	}
	deleted, err := s.Delete(ctx, missing, time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, deleted)
}

func testBlobDelete(t *testing.T, s domain.BlobStore) {
	data := randomBytes(2000)
	info, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{})
	require.NoError(t, err)

	// Put at or after the cutoff: kept.
	deleted, err := s.Delete(ctx, info.Digest, info.PutAt)
	require.NoError(t, err)
	assert.False(t, deleted, "a blob put at the cutoff is kept")
	_, err = s.Stat(ctx, info.Digest)
	require.NoError(t, err)

	// A reader that opened it keeps reading after the delete.
	r, _, err := s.Open(ctx, info.Digest)
	require.NoError(t, err)
	deleted, err = s.Delete(ctx, info.Digest, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.True(t, deleted)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.True(t, bytes.Equal(data, got))

	_, err = s.Stat(ctx, info.Digest)
	code(t, domain.ENotFound, err)
	assert.Empty(t, listBlobs(t, s))

	// Put again after a delete: stored anew.
	again, err := s.Put(ctx, bytes.NewReader(data), domain.PutOptions{})
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, readBlob(t, s, again.Digest)))
}

func testBlobConcurrent(t *testing.T, s domain.BlobStore) {
	data := randomBytes(256 << 10)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Put(ctx, bytes.NewReader(data), domain.PutOptions{})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	blobs := listBlobs(t, s)
	assert.Len(t, blobs, 1)
	assert.Equal(t, int64(len(data)), blobs[sha(data)].Size)
	assert.True(t, bytes.Equal(data, readBlob(t, s, sha(data))))
}
