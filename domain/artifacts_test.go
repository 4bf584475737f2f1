package domain_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/disk"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// artifactFixture is a fixture whose service stores blobs and uploads on
// disk, with a 1 MiB artifact limit.
type artifactFixture struct {
	*fixture
	blobs   *disk.Store
	uploads *disk.Uploads
}

const testArtifactMax = 1 << 20

func eachArtifactStore(t *testing.T, fn func(t *testing.T, f *artifactFixture)) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) domain.Store
	}{
		{"memory", func(*testing.T) domain.Store { return memory.New() }},
		{"postgres", func(t *testing.T) domain.Store { return postgres.New(pgtest.New(t)) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			c := &clock{now: time.Now().UTC().Truncate(time.Microsecond)}
			blobs, err := disk.New(t.TempDir())
			require.NoError(t, err)
			uploads, err := disk.NewUploads(t.TempDir())
			require.NoError(t, err)
			store := s.open(t)
			svc, err := domain.NewService(store, domain.Config{
				Now: c.Now, Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1},
				Blobs: blobs, Uploads: uploads, ArtifactMaxBytes: testArtifactMax,
				UploadTTL: time.Hour, DownloadURLTTL: time.Minute, BlobGCGrace: time.Hour,
			})
			require.NoError(t, err)
			fn(t, &artifactFixture{fixture: &fixture{svc: svc, store: store, clock: c}, blobs: blobs, uploads: uploads})
		})
	}
}

func (f *artifactFixture) blobDigests(t *testing.T) []string {
	t.Helper()
	var out []string
	require.NoError(t, f.blobs.List(ctx, func(b domain.BlobInfo) error { out = append(out, b.Digest); return nil }))
	return out
}

func content(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestUploadArtifact(t *testing.T) {
	eachArtifactStore(t, func(t *testing.T, f *artifactFixture) {
		tm := newDeployTeam(t, f.fixture)
		d := tm.deploy(t, f.fixture)
		editor := domain.UserCaller(tm.editor.UserID)
		data := content(200 << 10)

		a, err := f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "dist.tar.gz", ContentType: "application/gzip", Digest: digestOf(data)}, bytes.NewReader(data))
		require.NoError(t, err)
		assert.Equal(t, digestOf(data), a.Digest)
		assert.Equal(t, int64(len(data)), a.Size)
		assert.Equal(t, d.ProjectID, a.ProjectID)
		assert.Equal(t, tm.editor.UserID, a.CreatedBy)

		// The runner uploads the same content under another name: one blob.
		r, err := f.svc.UploadArtifact(ctx, domain.RunnerCaller(tm.runner), d.ID, domain.ArtifactInput{Name: "copy.bin"}, bytes.NewReader(data))
		require.NoError(t, err)
		assert.Equal(t, "application/octet-stream", r.ContentType)
		assert.Equal(t, tm.runner.TokenID, r.CreatedBy)
		assert.Equal(t, []string{a.Digest}, f.blobDigests(t))

		list, next, err := f.svc.ListArtifacts(ctx, domain.UserCaller(tm.viewer.UserID), d.ID, domain.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, next)
		assert.Equal(t, []*domain.Artifact{a, r}, list)
		got, err := f.svc.GetArtifact(ctx, domain.RunnerCaller(tm.runner), a.ID)
		require.NoError(t, err)
		assert.Equal(t, a, got)

		_, err = f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "dist.tar.gz"}, bytes.NewReader(data))
		code(t, domain.EConflict, err)
		_, err = f.svc.UploadArtifact(ctx, domain.UserCaller(tm.viewer.UserID), d.ID, domain.ArtifactInput{Name: "v"}, bytes.NewReader(data))
		code(t, domain.EForbidden, err)
		_, err = f.svc.UploadArtifact(ctx, domain.UserCaller(tm.stranger.UserID), d.ID, domain.ArtifactInput{Name: "s"}, bytes.NewReader(data))
		code(t, domain.ENotFound, err)
		_, err = f.svc.GetArtifact(ctx, domain.UserCaller(tm.stranger.UserID), a.ID)
		code(t, domain.ENotFound, err)
		_, err = f.svc.UploadArtifact(ctx, editor, uuid.New(), domain.ArtifactInput{Name: "x"}, bytes.NewReader(data))
		code(t, domain.ENotFound, err)
		for _, in := range []domain.ArtifactInput{{Name: ""}, {Name: "a\nb"}, {Name: "x", ContentType: "not a type"}, {Name: "x", Digest: "abc"}} {
			_, err = f.svc.UploadArtifact(ctx, editor, d.ID, in, bytes.NewReader(data))
			code(t, domain.EInvalid, err)
		}

		// Refused contents keep nothing.
		other := content(1000)
		_, err = f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "bad", Digest: digestOf(data)}, bytes.NewReader(other))
		code(t, domain.EInvalid, err)
		_, err = f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "big"}, bytes.NewReader(content(testArtifactMax+1)))
		assert.True(t, domain.IsTooLarge(err), "%v", err)
		assert.Equal(t, []string{a.Digest}, f.blobDigests(t))

		// Runners of another project see nothing.
		tm2 := newDeployTeam(t, f.fixture)
		_, err = f.svc.UploadArtifact(ctx, domain.RunnerCaller(tm2.runner), d.ID, domain.ArtifactInput{Name: "y"}, bytes.NewReader(data))
		code(t, domain.ENotFound, err)
		_, err = f.svc.GetArtifact(ctx, domain.RunnerCaller(tm2.runner), a.ID)
		code(t, domain.ENotFound, err)

		// Deleting: admins only, not runners.
		code(t, domain.EForbidden, f.svc.DeleteArtifact(ctx, tm.editor.UserID, a.ID))
		require.NoError(t, f.svc.DeleteArtifact(ctx, tm.admin.UserID, a.ID))
		code(t, domain.ENotFound, f.svc.DeleteArtifact(ctx, tm.admin.UserID, a.ID))

		assert.Equal(t, []string{"artifact.create:success", "artifact.create:success"},
			f.auditActions(t, domain.AuditFilter{ProjectID: d.ProjectID, Action: "artifact.create"}, tm.owner.UserID))
		assert.Equal(t, []string{"artifact.delete:success"},
			f.auditActions(t, domain.AuditFilter{ProjectID: d.ProjectID, Action: "artifact.delete"}, tm.owner.UserID))
		var types []string
		require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
			evs, err := tx.ClaimOutbox(ctx, 0)
			for _, e := range evs {
				if e.Channel == domain.ProjectChannel(d.ProjectID) {
					types = append(types, e.Type)
				}
			}
			return err
		}))
		assert.Subset(t, types, []string{domain.EventArtifactCreated, domain.EventArtifactDeleted})
	})
}

func TestResumableUpload(t *testing.T) {
	eachArtifactStore(t, func(t *testing.T, f *artifactFixture) {
		tm := newDeployTeam(t, f.fixture)
		d := tm.deploy(t, f.fixture)
		runner := domain.RunnerCaller(tm.runner)
		data := content(300 << 10)

		u, a, err := f.svc.CreateUpload(ctx, runner, d.ID, domain.ArtifactInput{Name: "bundle.js", ContentType: "text/javascript", Digest: digestOf(data)}, int64(len(data)))
		require.NoError(t, err)
		require.Nil(t, a)
		assert.Equal(t, d.ProjectID, u.ProjectID)

		// Only its creator sees it.
		_, err = f.svc.GetUpload(ctx, domain.UserCaller(tm.owner.UserID), u.ID)
		code(t, domain.ENotFound, err)
		_, _, err = f.svc.AppendUpload(ctx, domain.UserCaller(tm.owner.UserID), u.ID, 0, bytes.NewReader(data), nil)
		code(t, domain.ENotFound, err)

		u, a, err = f.svc.AppendUpload(ctx, runner, u.ID, 0, bytes.NewReader(data[:100<<10]), nil)
		require.NoError(t, err)
		require.Nil(t, a)
		assert.Equal(t, int64(100<<10), u.Offset)
		// The connection drops part way: what arrived is kept.
		u, _, err = f.svc.AppendUpload(ctx, runner, u.ID, u.Offset, io.MultiReader(bytes.NewReader(data[100<<10:150<<10]), errReader{}), nil)
		require.Error(t, err)
		got, err := f.svc.GetUpload(ctx, runner, u.ID)
		require.NoError(t, err)
		assert.Equal(t, int64(150<<10), got.Offset)
		_, _, err = f.svc.AppendUpload(ctx, runner, u.ID, 0, bytes.NewReader(data), nil)
		code(t, domain.EConflict, err)
		sum := sha256.Sum256([]byte("wrong"))
		_, _, err = f.svc.AppendUpload(ctx, runner, u.ID, got.Offset, bytes.NewReader(data[got.Offset:]), sum[:])
		assert.True(t, domain.IsChecksumMismatch(err), "%v", err)

		rest := sha256.Sum256(data[got.Offset:])
		u, a, err = f.svc.AppendUpload(ctx, runner, u.ID, got.Offset, bytes.NewReader(data[got.Offset:]), rest[:])
		require.NoError(t, err)
		require.NotNil(t, a)
		assert.Equal(t, int64(len(data)), u.Offset)
		assert.Equal(t, digestOf(data), a.Digest)
		assert.Equal(t, "text/javascript", a.ContentType)
		assert.Equal(t, []string{a.Digest}, f.blobDigests(t))
		_, err = f.svc.GetUpload(ctx, runner, u.ID)
		code(t, domain.ENotFound, err) // a finished upload is gone

		// A digest mismatch at the end keeps nothing.
		u, _, err = f.svc.CreateUpload(ctx, runner, d.ID, domain.ArtifactInput{Name: "liar", Digest: digestOf(data)}, 10)
		require.NoError(t, err)
		_, _, err = f.svc.AppendUpload(ctx, runner, u.ID, 0, bytes.NewReader([]byte("0123456789")), nil)
		code(t, domain.EInvalid, err)
		_, err = f.svc.GetUpload(ctx, runner, u.ID)
		code(t, domain.ENotFound, err)
		assert.Equal(t, []string{a.Digest}, f.blobDigests(t))

		// Limits, rights, an empty upload, cancel, expiry.
		_, _, err = f.svc.CreateUpload(ctx, runner, d.ID, domain.ArtifactInput{Name: "huge"}, testArtifactMax+1)
		assert.True(t, domain.IsTooLarge(err), "%v", err)
		_, _, err = f.svc.CreateUpload(ctx, domain.UserCaller(tm.viewer.UserID), d.ID, domain.ArtifactInput{Name: "v"}, 10)
		code(t, domain.EForbidden, err)
		_, empty, err := f.svc.CreateUpload(ctx, domain.UserCaller(tm.editor.UserID), d.ID, domain.ArtifactInput{Name: "empty"}, 0)
		require.NoError(t, err)
		require.NotNil(t, empty)
		assert.Zero(t, empty.Size)

		u, _, err = f.svc.CreateUpload(ctx, runner, d.ID, domain.ArtifactInput{Name: "cancelled"}, 10)
		require.NoError(t, err)
		require.NoError(t, f.svc.CancelUpload(ctx, runner, u.ID))
		code(t, domain.ENotFound, f.svc.CancelUpload(ctx, runner, u.ID))

		u, _, err = f.svc.CreateUpload(ctx, runner, d.ID, domain.ArtifactInput{Name: "abandoned"}, 10)
		require.NoError(t, err)
		f.clock.Add(30 * time.Minute)
		_, _, err = f.svc.AppendUpload(ctx, runner, u.ID, 0, bytes.NewReader([]byte("01234")), nil)
		require.NoError(t, err)
		f.clock.Add(59 * time.Minute)
		n, err := f.svc.ExpireUploads(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "an append extends the expiry")
		f.clock.Add(2 * time.Minute)
		n, err = f.svc.ExpireUploads(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		_, err = f.svc.GetUpload(ctx, runner, u.ID)
		code(t, domain.ENotFound, err)

		acts := f.auditActions(t, domain.AuditFilter{ProjectID: d.ProjectID, ActorID: tm.runner.TokenID}, tm.owner.UserID)
		assert.Contains(t, acts, "artifact.upload.create:success")
		assert.Contains(t, acts, "artifact.upload.cancel:success")
		assert.Contains(t, acts, "artifact.create:success")
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestSignedDownload(t *testing.T) {
	eachArtifactStore(t, func(t *testing.T, f *artifactFixture) {
		tm := newDeployTeam(t, f.fixture)
		d := tm.deploy(t, f.fixture)
		data := content(5000)
		a, err := f.svc.UploadArtifact(ctx, domain.UserCaller(tm.guest.UserID), d.ID, domain.ArtifactInput{Name: "a.txt"}, bytes.NewReader(data))
		require.NoError(t, err)
		path := "/api/v1/artifacts/" + a.ID.String() + "/download"

		_, _, _, err = f.svc.SignArtifactDownload(ctx, domain.UserCaller(tm.stranger.UserID), a.ID, path)
		code(t, domain.ENotFound, err)

		_, query, expires, err := f.svc.SignArtifactDownload(ctx, domain.UserCaller(tm.guest.UserID), a.ID, path)
		require.NoError(t, err)
		assert.Equal(t, f.clock.Now().Add(time.Minute).Truncate(time.Second), expires)
		q, err := url.ParseQuery(query)
		require.NoError(t, err)

		got, rc, err := f.svc.OpenArtifactDownload(ctx, "GET", path, q, a.ID)
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		assert.True(t, bytes.Equal(data, b))
		assert.Equal(t, a, got)
		acts := f.auditActions(t, domain.AuditFilter{ProjectID: d.ProjectID, ActorID: tm.guest.UserID, Action: "artifact.download"}, tm.owner.UserID)
		assert.Equal(t, []string{"artifact.download:success"}, acts)

		// Tampering: another artifact's path, another method.
		other, err := f.svc.UploadArtifact(ctx, domain.UserCaller(tm.guest.UserID), d.ID, domain.ArtifactInput{Name: "b.txt"}, bytes.NewReader(data))
		require.NoError(t, err)
		_, _, err = f.svc.OpenArtifactDownload(ctx, "GET", "/api/v1/artifacts/"+other.ID.String()+"/download", q, other.ID)
		code(t, domain.EForbidden, err)
		_, _, err = f.svc.OpenArtifactDownload(ctx, "DELETE", path, q, a.ID)
		code(t, domain.EForbidden, err)

		// Expired.
		f.clock.Add(time.Minute + time.Second)
		_, _, err = f.svc.OpenArtifactDownload(ctx, "GET", path, q, a.ID)
		code(t, domain.EForbidden, err)

		// A member removed since signing loses the download.
		_, query, _, err = f.svc.SignArtifactDownload(ctx, domain.UserCaller(tm.guest.UserID), a.ID, path)
		require.NoError(t, err)
		q, _ = url.ParseQuery(query)
		require.NoError(t, f.svc.RemoveProjectMember(ctx, tm.owner.UserID, tm.project.ID, tm.guest.UserID))
		_, _, err = f.svc.OpenArtifactDownload(ctx, "GET", path, q, a.ID)
		code(t, domain.ENotFound, err)

		// A runner's URL works until its token is revoked.
		_, query, _, err = f.svc.SignArtifactDownload(ctx, domain.RunnerCaller(tm.runner), a.ID, path)
		require.NoError(t, err)
		q, _ = url.ParseQuery(query)
		_, rc, err = f.svc.OpenArtifactDownload(ctx, "GET", path, q, a.ID)
		require.NoError(t, err)
		rc.Close()
		require.NoError(t, f.svc.RevokeDeployToken(ctx, tm.admin.UserID, tm.project.ID, tm.runner.TokenID))
		_, _, err = f.svc.OpenArtifactDownload(ctx, "GET", path, q, a.ID)
		code(t, domain.EForbidden, err)
	})
}

func TestCollectBlobs(t *testing.T) {
	eachArtifactStore(t, func(t *testing.T, f *artifactFixture) {
		tm := newDeployTeam(t, f.fixture)
		d := tm.deploy(t, f.fixture)
		editor := domain.UserCaller(tm.editor.UserID)
		shared, lone := content(1000), content(2000)
		a1, err := f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "a1"}, bytes.NewReader(shared))
		require.NoError(t, err)
		a2, err := f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "a2"}, bytes.NewReader(shared))
		require.NoError(t, err)
		b, err := f.svc.UploadArtifact(ctx, editor, d.ID, domain.ArtifactInput{Name: "b"}, bytes.NewReader(lone))
		require.NoError(t, err)
		// A blob whose artifact was never recorded (an upload in flight,
		// or one that failed after storing its content).
		orphan, err := f.blobs.Put(ctx, bytes.NewReader(content(10)), domain.PutOptions{})
		require.NoError(t, err)

		require.NoError(t, f.svc.DeleteArtifact(ctx, tm.admin.UserID, a1.ID))
		require.NoError(t, f.svc.DeleteArtifact(ctx, tm.admin.UserID, b.ID))

		n, _, err := f.svc.CollectBlobs(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing younger than the grace period goes")
		assert.ElementsMatch(t, []string{a1.Digest, b.Digest, orphan.Digest}, f.blobDigests(t))

		f.clock.Add(2 * time.Hour)
		n, size, err := f.svc.CollectBlobs(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		assert.Equal(t, int64(2010), size)
		assert.Equal(t, []string{a2.Digest}, f.blobDigests(t), "the blob a2 still refers to stays")

		require.NoError(t, f.svc.DeleteArtifact(ctx, tm.admin.UserID, a2.ID))
		// Put again after the cutoff (a new upload of the same content
		// about to be recorded): spared.
		_, err = f.blobs.Put(ctx, bytes.NewReader(shared), domain.PutOptions{})
		require.NoError(t, err)
		f.clock.Add(-2 * time.Hour)
		n, _, err = f.svc.CollectBlobs(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)
		f.clock.Add(4 * time.Hour)
		n, _, err = f.svc.CollectBlobs(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		assert.Empty(t, f.blobDigests(t))
	})
}
