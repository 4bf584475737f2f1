package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/disk"
	"github.com/tone-ai/tone/domain/memory"
)

// Artifact throughput over HTTP on loopback against a plain copy of the
// same bytes from file to file on the same disk. Every variant reads its
// source from a file and makes its destination durable (fsync), as the
// blob store does:
//
//	go test ./http/ -run '^$' -bench 'ArtifactThroughput' -benchtime 5x -count 3
//
// b.SetBytes makes go test report MB/s.

var artifactBenchSizes = []int{64 << 20, 512 << 20}

// benchArtifactServer is a server over the memory store with blobs on disk
// under dir, and an editor's token and a deployment.
type benchArtifactServer struct {
	srv        *httptest.Server
	token      string
	deployment uuid.UUID
	client     *http.Client
}

func newBenchArtifactServer(b *testing.B, dir string) *benchArtifactServer {
	b.Helper()
	ctx := context.Background()
	blobs, err := disk.New(filepath.Join(dir, "blobs"))
	must(b, err)
	uploads, err := disk.NewUploads(filepath.Join(dir, "uploads"))
	must(b, err)
	svc, err := domain.NewService(memory.New(), domain.Config{
		Password: testDomainConfig().Password, Blobs: blobs, Uploads: uploads, ArtifactMaxBytes: 1 << 30,
	})
	must(b, err)
	must(b, svc.Register(ctx, domain.Registration{Email: "bench@example.com", Password: testPassword, DisplayName: "Bench"}))
	tok, err := svc.Login(ctx, "bench@example.com", testPassword)
	must(b, err)
	ws, err := svc.CreateWorkspace(ctx, tok.UserID, "Bench")
	must(b, err)
	name := "Site"
	p, err := svc.CreateProject(ctx, tok.UserID, ws.ID, domain.ProjectInput{Name: &name})
	must(b, err)
	d, err := svc.CreateDeployment(ctx, tok.UserID, p.ID, domain.DeploymentInput{Environment: "production"})
	must(b, err)
	unlimited := Rate{N: 1 << 30, Window: time.Minute}
	api := NewServer(svc, Config{Logger: slog.New(slog.DiscardHandler), RequestsPerIP: unlimited, RequestsPerUser: unlimited,
		LoginPerIP: unlimited, LoginPerAccount: unlimited})
	srv := httptest.NewServer(api)
	b.Cleanup(srv.Close)
	return &benchArtifactServer{srv: srv, token: tok.AccessToken, deployment: d.ID, client: srv.Client()}
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// writeRandomFile writes n random bytes to a new file in dir.
func writeRandomFile(b *testing.B, dir string, n int) string {
	b.Helper()
	path := filepath.Join(dir, fmt.Sprintf("src-%d", n))
	f, err := os.Create(path)
	must(b, err)
	_, err = io.CopyN(f, rand.Reader, int64(n))
	must(b, err)
	must(b, f.Close())
	return path
}

// upload posts a body of the 8-byte prefix and then the file at path, so
// each iteration stores new content (no deduplication).
func (s *benchArtifactServer) upload(b *testing.B, path string, i int) artifactJSON {
	f, err := os.Open(path)
	must(b, err)
	defer f.Close()
	fi, err := f.Stat()
	must(b, err)
	prefix := binary.BigEndian.AppendUint64(nil, uint64(i)+uint64(time.Now().UnixNano()))
	req, err := http.NewRequest("POST", s.srv.URL+"/api/v1/deployments/"+s.deployment.String()+"/artifacts?name=a"+strconv.Itoa(i)+"-"+uuid.NewString(),
		io.MultiReader(bytes.NewReader(prefix), f))
	must(b, err)
	req.ContentLength = fi.Size() + int64(len(prefix))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := s.client.Do(req)
	must(b, err)
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(res.Body)
		b.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	var a artifactJSON
	must(b, json.NewDecoder(res.Body).Decode(&a))
	return a
}

// uploadTus uploads the file at path with tus, chunk bytes per PATCH, after
// an 8-byte prefix that makes each iteration's content new.
func (s *benchArtifactServer) uploadTus(b *testing.B, path string, i, chunk int) {
	f, err := os.Open(path)
	must(b, err)
	defer f.Close()
	fi, err := f.Stat()
	must(b, err)
	prefix := binary.BigEndian.AppendUint64(nil, uint64(i)+uint64(time.Now().UnixNano()))
	length := fi.Size() + int64(len(prefix))
	do := func(method, url string, body io.Reader, n int64, headers ...string) *http.Response {
		req, err := http.NewRequest(method, url, body)
		must(b, err)
		req.ContentLength = n
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		for j := 0; j+1 < len(headers); j += 2 {
			req.Header.Set(headers[j], headers[j+1])
		}
		res, err := s.client.Do(req)
		must(b, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := do("POST", s.srv.URL+"/api/v1/deployments/"+s.deployment.String()+"/uploads", nil, 0,
		"Upload-Length", strconv.FormatInt(length, 10), "Upload-Metadata", tusMeta("name", "t"+strconv.Itoa(i)+"-"+uuid.NewString()))
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("create upload: %d", res.StatusCode)
	}
	loc := s.srv.URL + res.Header.Get("Location")
	body := io.MultiReader(bytes.NewReader(prefix), f)
	for off := int64(0); off < length; {
		n := min(int64(chunk), length-off)
		res := do("PATCH", loc, io.LimitReader(body, n), n, "Content-Type", "application/offset+octet-stream",
			"Upload-Offset", strconv.FormatInt(off, 10))
		if res.StatusCode != http.StatusNoContent {
			b.Fatalf("patch at %d: %d", off, res.StatusCode)
		}
		off += n
	}
}

func (s *benchArtifactServer) downloadURL(b *testing.B, id uuid.UUID) string {
	req, err := http.NewRequest("GET", s.srv.URL+"/api/v1/artifacts/"+id.String()+"/download-url", nil)
	must(b, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := s.client.Do(req)
	must(b, err)
	defer res.Body.Close()
	var u downloadURLJSON
	must(b, json.NewDecoder(res.Body).Decode(&u))
	return s.srv.URL + u.URL
}

// syncedCopy copies src into a new file dst and syncs it.
func syncedCopy(b *testing.B, dst string, src io.Reader, buffered bool) int64 {
	f, err := os.Create(dst)
	must(b, err)
	var n int64
	if buffered {
		// Through a user-space buffer, as a process that reads and writes
		// does (no copy_file_range).
		n, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{src}, make([]byte, 1<<20))
	} else {
		n, err = io.Copy(f, src)
	}
	must(b, err)
	must(b, f.Sync())
	must(b, f.Close())
	return n
}

func BenchmarkArtifactThroughput(b *testing.B) {
	for _, size := range artifactBenchSizes {
		name := strconv.Itoa(size>>20) + "MiB"
		b.Run("upload/"+name, func(b *testing.B) {
			dir := b.TempDir()
			src := writeRandomFile(b, dir, size)
			s := newBenchArtifactServer(b, dir)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				s.upload(b, src, i)
			}
		})
		b.Run("upload-tus/"+name, func(b *testing.B) {
			dir := b.TempDir()
			src := writeRandomFile(b, dir, size)
			s := newBenchArtifactServer(b, dir)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				s.uploadTus(b, src, i, 16<<20)
			}
		})
		b.Run("download/"+name, func(b *testing.B) {
			dir := b.TempDir()
			src := writeRandomFile(b, dir, size)
			s := newBenchArtifactServer(b, dir)
			url := s.downloadURL(b, s.upload(b, src, 0).ID)
			dst := filepath.Join(dir, "dst")
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				res, err := s.client.Get(url)
				must(b, err)
				if res.StatusCode != http.StatusOK {
					b.Fatalf("download: %d", res.StatusCode)
				}
				if n := syncedCopy(b, dst, res.Body, false); n != int64(size)+8 {
					b.Fatalf("downloaded %d bytes", n)
				}
				res.Body.Close()
			}
		})
		for _, buffered := range []bool{false, true} {
			kind := "copy_file_range"
			if buffered {
				kind = "buffered"
			}
			b.Run("diskcopy-"+kind+"/"+name, func(b *testing.B) {
				dir := b.TempDir()
				src := writeRandomFile(b, dir, size)
				dst := filepath.Join(dir, "dst")
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					f, err := os.Open(src)
					must(b, err)
					syncedCopy(b, dst, f, buffered)
					f.Close()
				}
			})
		}
	}
}
