package http

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// artifactEnv is a project with an editor, a viewer, a stranger, a deploy
// token and a deployment.
type artifactEnv struct {
	a                               *testAPI
	owner, editor, viewer, stranger *testUser
	token                           string // the deploy token's secret
	deployment                      uuid.UUID
}

const testMaxArtifact = 4 << 20

func newArtifactEnv(t *testing.T) *artifactEnv {
	t.Helper()
	a := newTestAPI(t, Config{}, domain.Config{ArtifactMaxBytes: testMaxArtifact, DownloadURLTTL: 5 * time.Second})
	e := &artifactEnv{a: a, owner: a.signUp("owner"), editor: a.signUp("editor"), viewer: a.signUp("viewer"), stranger: a.signUp("stranger")}
	ws := a.createWorkspace(e.owner, "Acme")
	project := a.createProject(e.owner, ws, "Site")
	a.addMember(e.owner, "projects", project, e.editor, domain.RoleEditor)
	a.addMember(e.owner, "projects", project, e.viewer, domain.RoleViewer)
	resp := a.do("POST", "/api/v1/projects/"+project.String()+"/deploy-tokens", e.owner.Access, map[string]string{"name": "ci"})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var tok deployTokenJSON
	resp.decode(t, &tok)
	e.token = tok.Token
	resp = a.do("POST", "/api/v1/projects/"+project.String()+"/deployments", e.editor.Access, map[string]string{"environment": "production"})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	e.deployment = a.id(resp)
	return e
}

func randomContent(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (e *artifactEnv) upload(t *testing.T, prefix, token, name string, data []byte, query string) *response {
	t.Helper()
	path := prefix + "/deployments/" + e.deployment.String() + "/artifacts?name=" + url.QueryEscape(name) + query
	return e.a.do("POST", path, token, data, "Content-Type", "application/gzip")
}

// download fetches a signed URL without credentials.
func (e *artifactEnv) download(t *testing.T, method, signed string) *response {
	t.Helper()
	return e.a.do(method, signed, "", nil)
}

func (e *artifactEnv) downloadURL(t *testing.T, prefix, token string, id uuid.UUID) string {
	t.Helper()
	resp := e.a.do("GET", prefix+"/artifacts/"+id.String()+"/download-url", token, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var u downloadURLJSON
	resp.decode(t, &u)
	return u.URL
}

func TestArtifactUploadDownload(t *testing.T) {
	e := newArtifactEnv(t)
	a := e.a
	data := randomContent(3<<20 + 123) // over the general body limit of 1 MiB

	resp := e.upload(t, "/api/v1", e.editor.Access, "dist.tar.gz", data, "&sha256="+hexSHA(data))
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var art artifactJSON
	resp.decode(t, &art)
	assert.Equal(t, hexSHA(data), art.SHA256)
	assert.Equal(t, int64(len(data)), art.Size)
	assert.Equal(t, "application/gzip", art.ContentType)
	assert.Equal(t, "/api/v1/artifacts/"+art.ID.String(), resp.Header.Get("Location"))

	// The runner uploads through its own routes.
	resp = e.upload(t, "/api/v1/runner", e.token, "report.html", []byte("<p>ok</p>"), "")
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var rep artifactJSON
	resp.decode(t, &rep)
	assert.Equal(t, "/api/v1/runner/artifacts/"+rep.ID.String(), resp.Header.Get("Location"))

	for _, who := range []struct {
		prefix, token string
	}{{"/api/v1", e.viewer.Access}, {"/api/v1/runner", e.token}} {
		items := listAll[artifactJSON](a, &testUser{Access: who.token}, who.prefix+"/deployments/"+e.deployment.String()+"/artifacts")
		require.Len(t, items, 2)
		assert.Equal(t, art, items[0])
	}

	// Refusals.
	assert.Equal(t, http.StatusForbidden, e.upload(t, "/api/v1", e.viewer.Access, "v", data, "").Status)
	assert.Equal(t, http.StatusNotFound, e.upload(t, "/api/v1", e.stranger.Access, "s", data, "").Status)
	assert.Equal(t, http.StatusConflict, e.upload(t, "/api/v1", e.editor.Access, "dist.tar.gz", data, "").Status)
	resp = e.upload(t, "/api/v1", e.editor.Access, "liar", data[:1000], "&sha256="+hexSHA(data))
	assert.Equal(t, http.StatusBadRequest, resp.Status, "digest mismatch")
	resp = e.upload(t, "/api/v1", e.editor.Access, "big", randomContent(testMaxArtifact+1), "")
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.Status, resp.String())
	assert.Equal(t, float64(testMaxArtifact), resp.errDetails()["max_bytes"])
	assert.Len(t, listAll[artifactJSON](a, e.viewer, "/api/v1/deployments/"+e.deployment.String()+"/artifacts"), 2)

	// Download through a signed URL, with no other credentials.
	signed := e.downloadURL(t, "/api/v1", e.viewer.Access, art.ID)
	resp = e.download(t, "GET", signed)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.True(t, bytes.Equal(data, resp.Body))
	assert.Equal(t, "application/gzip", resp.Header.Get("Content-Type"))
	assert.Equal(t, `attachment; filename=dist.tar.gz`, resp.Header.Get("Content-Disposition"))
	resp = e.a.do("GET", signed, "", nil, "Range", "bytes=10-19")
	require.Equal(t, http.StatusPartialContent, resp.Status)
	assert.Equal(t, data[10:20], resp.Body)
	resp = e.a.do("GET", signed, "", nil, "Range", fmt.Sprintf("bytes=%d-", len(data)+10))
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.Status)

	// A runner's URL works too.
	resp = e.download(t, "GET", e.downloadURL(t, "/api/v1/runner", e.token, rep.ID))
	require.Equal(t, http.StatusOK, resp.Status)
	assert.Equal(t, "<p>ok</p>", string(resp.Body))

	// Every download is audited, as its signer.
	evs, err := listAudit(a.svc, e.owner.ID, domain.AuditFilter{Action: "artifact.download"})
	require.NoError(t, err)
	require.Len(t, evs, 4)
	assert.Equal(t, e.viewer.ID, evs[0].ActorID)
	assert.Equal(t, art.ID.String(), evs[0].TargetID)

	// Deleting: admins and up.
	assert.Equal(t, http.StatusForbidden, a.do("DELETE", "/api/v1/artifacts/"+art.ID.String(), e.editor.Access, nil).Status)
	assert.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/artifacts/"+art.ID.String(), e.owner.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, e.download(t, "GET", signed).Status, "a deleted artifact is gone")
}

func listAudit(svc *domain.Service, actor uuid.UUID, f domain.AuditFilter) ([]*domain.AuditEvent, error) {
	var evs []*domain.AuditEvent
	err := svc.Store().InTx(context.Background(), actor, func(tx domain.Tx) (err error) {
		evs, err = tx.ListAudit(context.Background(), f, domain.Page{Limit: 100})
		return err
	})
	return evs, err
}

// TestSignedURLTampering changes each signed part of a download URL, and
// lets one expire.
func TestSignedURLTampering(t *testing.T) {
	e := newArtifactEnv(t)
	first := e.upload(t, "/api/v1", e.editor.Access, "a", []byte("first"), "")
	second := e.upload(t, "/api/v1", e.editor.Access, "b", []byte("second"), "")
	require.Equal(t, http.StatusCreated, first.Status)
	require.Equal(t, http.StatusCreated, second.Status)
	firstID, secondID := e.a.id(first), e.a.id(second)
	signed := e.downloadURL(t, "/api/v1", e.viewer.Access, firstID)
	require.Equal(t, http.StatusOK, e.download(t, "GET", signed).Status)
	path, query, _ := strings.Cut(signed, "?")
	q, err := url.ParseQuery(query)
	require.NoError(t, err)
	with := func(k, v string) string {
		c, _ := url.ParseQuery(query)
		c.Set(k, v)
		return path + "?" + c.Encode()
	}
	exp, err := strconv.ParseInt(q.Get(domain.SignedExpires), 10, 64)
	require.NoError(t, err)
	for _, test := range []struct{ name, method, url string }{
		{"other artifact's path", "GET", strings.Replace(signed, firstID.String(), secondID.String(), 1)},
		{"later expiry", "GET", with(domain.SignedExpires, strconv.FormatInt(exp+3600, 10))},
		{"earlier expiry", "GET", with(domain.SignedExpires, strconv.FormatInt(exp-1, 10))},
		{"other user", "GET", with(domain.SignedUser, e.editor.ID.String())},
		{"signature", "GET", with(domain.SignedSig, base64.RawURLEncoding.EncodeToString(make([]byte, 32)))},
		{"no signature", "GET", path},
		{"method", "HEAD", signed},
	} {
		t.Run(test.name, func(t *testing.T) {
			resp := e.download(t, test.method, test.url)
			assert.Equal(t, http.StatusForbidden, resp.Status)
			if test.method == "GET" {
				assert.Equal(t, domain.EForbidden, resp.errCode())
				assert.NotContains(t, string(resp.Body), "second")
			}
		})
	}
	// The URL expires after --download-url-ttl (5 s here).
	t.Run("expired", func(t *testing.T) {
		time.Sleep(time.Until(time.Unix(exp, 0)) + 50*time.Millisecond)
		resp := e.download(t, "GET", signed)
		assert.Equal(t, http.StatusForbidden, resp.Status)
		assert.Contains(t, resp.errMessage(t), "expired")
	})
}

// TestArtifactSizeCapStreaming sends an endless body without a length: the
// server refuses it once past the limit, without reading it all (it could
// not) or keeping anything.
func TestArtifactSizeCapStreaming(t *testing.T) {
	e := newArtifactEnv(t)
	src := &countingEndless{}
	req, err := http.NewRequest("POST", e.a.srv.URL+"/api/v1/deployments/"+e.deployment.String()+"/artifacts?name=endless", src)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+e.editor.Access)
	req.ContentLength = -1 // chunked: the server cannot know the size up front
	res, err := e.a.srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, string(body))
	assert.Less(t, src.n.Load(), int64(testMaxArtifact+8<<20), "the client sent %d bytes", src.n.Load())
	assert.Empty(t, listAll[artifactJSON](e.a, e.editor, "/api/v1/deployments/"+e.deployment.String()+"/artifacts"))
}

// countingEndless is an endless body; the transport may still be reading
// it after the response arrived, so the count is atomic.
type countingEndless struct{ n atomic.Int64 }

func (c *countingEndless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// tus helpers.

func tusMeta(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

func (e *artifactEnv) tus(method, path, token string, body []byte, headers ...string) *response {
	h := append([]string{"Tus-Resumable", "1.0.0", "Content-Type", ""}, headers...)
	var b any
	if body != nil {
		b = body
	}
	return e.a.do(method, path, token, b, h...)
}

func TestTusUpload(t *testing.T) {
	e := newArtifactEnv(t)
	data := randomContent(2<<20 + 77)

	resp := e.a.do("OPTIONS", "/api/v1/uploads", "", nil)
	require.Equal(t, http.StatusNoContent, resp.Status)
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Version"))
	assert.Equal(t, "creation,checksum,termination,expiration", resp.Header.Get("Tus-Extension"))
	assert.Equal(t, "sha256", resp.Header.Get("Tus-Checksum-Algorithm"))
	assert.Equal(t, strconv.Itoa(testMaxArtifact), resp.Header.Get("Tus-Max-Size"))

	create := "/api/v1/runner/deployments/" + e.deployment.String() + "/uploads"
	resp = e.tus("POST", create, e.token, nil, "Upload-Length", strconv.Itoa(len(data)),
		"Upload-Metadata", tusMeta("filename", "site.tar", "filetype", "application/x-tar", "sha256", hexSHA(data)))
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, "/api/v1/runner/uploads/"), loc)
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Resumable"))

	head := func() int64 {
		t.Helper()
		resp := e.tus("HEAD", loc, e.token, nil)
		require.Equal(t, http.StatusOK, resp.Status)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Equal(t, strconv.Itoa(len(data)), resp.Header.Get("Upload-Length"))
		n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		require.NoError(t, err)
		return n
	}
	patch := func(offset int, chunk []byte, extra ...string) *response {
		h := append([]string{"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(offset)}, extra...)
		return e.tus("PATCH", loc, e.token, chunk, h...)
	}
	assert.Equal(t, int64(0), head())

	// A first chunk with its checksum.
	sum := sha256.Sum256(data[:1<<20])
	resp = patch(0, data[:1<<20], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	assert.Equal(t, strconv.Itoa(1<<20), resp.Header.Get("Upload-Offset"))
	assert.NotEmpty(t, resp.Header.Get("Upload-Expires"))

	// Protocol errors.
	assert.Equal(t, http.StatusConflict, patch(0, data[:10]).Status, "stale offset")
	resp = patch(1<<20, data[1<<20:1<<20+100], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
	assert.Equal(t, StatusChecksumMismatch, resp.Status, "checksum mismatch")
	assert.Equal(t, http.StatusBadRequest, patch(1<<20, data[1<<20:1<<20+100], "Upload-Checksum", "md5 AAAA").Status)
	assert.Equal(t, http.StatusUnsupportedMediaType,
		e.tus("PATCH", loc, e.token, data[:10], "Content-Type", "application/json", "Upload-Offset", strconv.Itoa(1<<20)).Status)
	resp = e.a.do("PATCH", loc, e.token, data[:10], "Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(1<<20))
	assert.Equal(t, http.StatusPreconditionFailed, resp.Status, "no Tus-Resumable")
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Version"))
	assert.Equal(t, http.StatusNotFound, e.tus("HEAD", "/api/v1/uploads/"+strings.TrimPrefix(loc, "/api/v1/runner/uploads/"), e.editor.Access, nil).Status,
		"only its creator sees an upload")
	assert.Equal(t, int64(1<<20), head(), "refused chunks keep nothing")

	// The connection drops part way through a chunk: what arrived is kept.
	sent := 300 << 10
	interruptedPatch(t, e.a.srv.URL+loc, e.token, 1<<20, data[1<<20:1<<20+sent], len(data)-1<<20)
	var offset int64
	require.Eventually(t, func() bool { offset = head(); return offset == int64(1<<20+sent) }, 5*time.Second, 20*time.Millisecond,
		"offset %d after the interrupted PATCH", offset)

	// Resume from the offset the server has: the last PATCH records the
	// artifact. The interrupted request may still hold the upload for a
	// moment after its bytes are recorded; the answer is then 409, and a
	// client tries again, as tus clients do.
	require.Eventually(t, func() bool {
		resp = patch(int(offset), data[offset:])
		return resp.Status != http.StatusConflict
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	artID, err := uuid.Parse(resp.Header.Get("Tone-Artifact-ID"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, e.tus("HEAD", loc, e.token, nil).Status, "a finished upload is gone")

	var art artifactJSON
	e.a.do("GET", "/api/v1/artifacts/"+artID.String(), e.viewer.Access, nil).decode(t, &art)
	assert.Equal(t, "site.tar", art.Name)
	assert.Equal(t, "application/x-tar", art.ContentType)
	assert.Equal(t, hexSHA(data), art.SHA256)
	resp = e.download(t, "GET", e.downloadURL(t, "/api/v1", e.viewer.Access, artID))
	require.Equal(t, http.StatusOK, resp.Status)
	assert.True(t, bytes.Equal(data, resp.Body), "the downloaded content is what was uploaded")

	// Termination, and limits at creation.
	user := "/api/v1/deployments/" + e.deployment.String() + "/uploads"
	resp = e.tus("POST", user, e.editor.Access, nil, "Upload-Length", "10", "Upload-Metadata", tusMeta("name", "tmp"))
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	loc = resp.Header.Get("Location")
	assert.True(t, strings.HasPrefix(loc, "/api/v1/uploads/"), loc)
	assert.Equal(t, http.StatusNoContent, e.tus("DELETE", loc, e.editor.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, e.tus("HEAD", loc, e.editor.Access, nil).Status)
	assert.Equal(t, http.StatusRequestEntityTooLarge,
		e.tus("POST", user, e.editor.Access, nil, "Upload-Length", strconv.Itoa(testMaxArtifact+1), "Upload-Metadata", tusMeta("name", "big")).Status)
	assert.Equal(t, http.StatusForbidden,
		e.tus("POST", user, e.viewer.Access, nil, "Upload-Length", "10", "Upload-Metadata", tusMeta("name", "v")).Status)
	assert.Equal(t, http.StatusBadRequest, e.tus("POST", user, e.editor.Access, nil, "Upload-Metadata", tusMeta("name", "x")).Status, "no length")
	assert.Equal(t, http.StatusBadRequest,
		e.tus("POST", user, e.editor.Access, nil, "Upload-Length", "10", "Upload-Metadata", "name !!!").Status, "bad metadata")
}

// interruptedPatch sends a tus PATCH announcing length bytes but sends only
// chunk before closing the connection, as a client that loses its network
// does.
func interruptedPatch(t *testing.T, target, token string, offset int, chunk []byte, length int) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n",
		u.Path, u.Host, token, offset, length)
	_, err = w.Write(chunk)
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	time.Sleep(100 * time.Millisecond) // let the server read what was sent
	require.NoError(t, conn.Close())
}

// TestArtifactsOfOthersAreInvisible: a member of another project, and the
// runner of another project, get the same 404 for a project's deployment,
// artifacts and uploads as for ids that do not exist, and change nothing.
func TestArtifactsOfOthersAreInvisible(t *testing.T) {
	e := newArtifactEnv(t)
	a := e.a
	alice := a.signUp("alice")
	wsA := a.createWorkspace(alice, "Alpha")
	projectA := a.createProject(alice, wsA, "Alpha site")
	resp := a.do("POST", "/api/v1/projects/"+projectA.String()+"/deploy-tokens", alice.Access, map[string]string{"name": "ci"})
	require.Equal(t, http.StatusCreated, resp.Status)
	var tokA deployTokenJSON
	resp.decode(t, &tokA)

	resp = e.upload(t, "/api/v1", e.editor.Access, "dist.tar.gz", []byte("secret bundle"), "")
	require.Equal(t, http.StatusCreated, resp.Status)
	art := a.id(resp)
	resp = e.tus("POST", "/api/v1/deployments/"+e.deployment.String()+"/uploads", e.editor.Access, nil,
		"Upload-Length", "100", "Upload-Metadata", tusMeta("name", "big"))
	require.Equal(t, http.StatusCreated, resp.Status)
	upload := strings.TrimPrefix(resp.Header.Get("Location"), "/api/v1/uploads/")

	before := listAll[artifactJSON](a, e.editor, "/api/v1/deployments/"+e.deployment.String()+"/artifacts")
	for _, who := range []struct{ prefix, token string }{{"/api/v1", alice.Access}, {"/api/v1/runner", tokA.Token}} {
		for _, test := range []struct {
			method, path string
			body         []byte
			headers      []string
		}{
			{"GET", "/deployments/{deployment}/artifacts", nil, nil},
			{"POST", "/deployments/{deployment}/artifacts?name=planted", []byte("x"), []string{"Content-Type", "text/plain"}},
			{"GET", "/artifacts/{artifact}", nil, nil},
			{"GET", "/artifacts/{artifact}/download-url", nil, nil},
			{"POST", "/deployments/{deployment}/uploads", nil, []string{"Tus-Resumable", "1.0.0", "Upload-Length", "1", "Upload-Metadata", tusMeta("name", "p")}},
			{"HEAD", "/uploads/{upload}", nil, []string{"Tus-Resumable", "1.0.0"}},
			{"PATCH", "/uploads/{upload}", []byte("x"), []string{"Tus-Resumable", "1.0.0", "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0"}},
			{"DELETE", "/uploads/{upload}", nil, []string{"Tus-Resumable", "1.0.0"}},
		} {
			t.Run(who.prefix+" "+test.method+" "+test.path, func(t *testing.T) {
				a := a.sub(t)
				real := strings.NewReplacer("{deployment}", e.deployment.String(), "{artifact}", art.String(), "{upload}", upload).Replace(test.path)
				fake := strings.NewReplacer("{deployment}", uuid.NewString(), "{artifact}", uuid.NewString(), "{upload}", uuid.NewString()).Replace(test.path)
				var body any
				if test.body != nil {
					body = test.body
				}
				got := a.do(test.method, who.prefix+real, who.token, body, test.headers...)
				require.Equal(t, http.StatusNotFound, got.Status, "%s %s: %s", test.method, real, got)
				missing := a.do(test.method, who.prefix+fake, who.token, body, test.headers...)
				require.Equal(t, http.StatusNotFound, missing.Status, missing.String())
				assert.Equal(t, missing.errMessage(t), got.errMessage(t), "a hidden object must look like a missing one")
			})
		}
	}
	assert.Equal(t, before, listAll[artifactJSON](a, e.editor, "/api/v1/deployments/"+e.deployment.String()+"/artifacts"))
	resp = e.tus("HEAD", "/api/v1/uploads/"+upload, e.editor.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.Equal(t, "0", resp.Header.Get("Upload-Offset"), "the upload is untouched")
}
