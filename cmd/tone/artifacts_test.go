package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// TestServeArtifacts: a runner uploads an artifact to a real tone serve on
// PostgreSQL, a member gets a signed download URL, and the URL still works
// after a restart with the same data directory and URL key file.
func TestServeArtifacts(t *testing.T) {
	db := pgtest.NewEmptyDB(t)
	dataDir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "url.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	require.NoError(t, os.WriteFile(keyFile, key, 0o600))
	args := []string{"--database-url", db.AppURL, "--migrate-database-url", db.OwnerURL, "--migrate",
		"--data-dir", dataDir, "--url-signing-key-file", keyFile, "--artifact-max-bytes", "1048576"}

	base, stop, _ := startServer(t, args...)
	ws, ann := walkThrough(t, base)
	project := ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
	secret := ann.do("POST", "/projects/"+project+"/deploy-tokens", map[string]string{"name": "ci"}, 201)["token"].(string)
	runner := &client{t: t, base: base, token: secret}
	deployment := runner.do("POST", "/runner/deployments", map[string]string{"environment": "production"}, 201)["id"].(string)

	content := make([]byte, 300<<10)
	_, _ = rand.Read(content)
	sum := sha256.Sum256(content)
	digest := hex.EncodeToString(sum[:])
	post := func(body []byte) *http.Response {
		req, err := http.NewRequest("POST", base+"/api/v1/runner/deployments/"+deployment+"/artifacts?name=site.tar&sha256="+digest, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/x-tar")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(make([]byte, 1048577)).StatusCode, "--artifact-max-bytes")
	res := post(content)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	items := ann.do("GET", "/deployments/"+deployment+"/artifacts", nil, 200)["items"].([]any)
	require.Len(t, items, 1)
	art := items[0].(map[string]any)
	assert.Equal(t, digest, art["sha256"])
	assert.FileExists(t, filepath.Join(dataDir, "blobs", "sha256", digest[:2], digest), "the blob is under --data-dir")

	signed := ann.do("GET", "/artifacts/"+art["id"].(string)+"/download-url", nil, 200)["url"].(string)
	download := func() []byte {
		res, err := http.Get(base + signed)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return b
	}
	assert.True(t, bytes.Equal(content, download()))
	require.NoError(t, stop())

	base, stop, logs := startServer(t, args...)
	assert.True(t, bytes.Equal(content, download()), "the URL outlives a restart with the same key file and data directory")
	require.NoError(t, stop())
	assert.NotContains(t, logs.String(), "URL signing key is ephemeral")
}
