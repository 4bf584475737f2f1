package http

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// Artifacts.
//
// The artifact routes are served twice: under /api/v1 for signed-in users
// and under /api/v1/runner for runners (deploy tokens), with the same
// handlers; caller tells them apart. Deleting is for users only, and the
// signed download route needs no credentials but its signature.

type artifactJSON struct {
	ID           uuid.UUID `json:"id"`
	ProjectID    uuid.UUID `json:"project_id"`
	DeploymentID uuid.UUID `json:"deployment_id"`
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	ContentType  string    `json:"content_type"`
	CreatedBy    uuid.UUID `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
}

func toArtifactJSON(a *domain.Artifact) artifactJSON {
	return artifactJSON{ID: a.ID, ProjectID: a.ProjectID, DeploymentID: a.DeploymentID, Name: a.Name, Size: a.Size,
		SHA256: a.Digest, ContentType: a.ContentType, CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt}
}

// artifactRoutes mounts the artifact and upload routes that users and
// runners share on r.
func (s *Server) artifactRoutes(r chi.Router) {
	r.Get("/deployments/{deploymentID}/artifacts", s.listArtifacts)
	r.Post("/deployments/{deploymentID}/artifacts", s.uploadArtifact)
	r.Get("/artifacts/{artifactID}", s.getArtifact)
	r.Get("/artifacts/{artifactID}/download-url", s.artifactDownloadURL)
	r.Post("/deployments/{deploymentID}/uploads", s.tusCreate)
	r.Head("/uploads/{uploadID}", s.tusHead)
	r.Patch("/uploads/{uploadID}", s.tusPatch)
	r.Delete("/uploads/{uploadID}", s.tusDelete)
}

// caller returns who makes an authenticated request: the runner of a
// runner route, else the signed-in user.
func caller(r *http.Request) domain.Caller {
	if rn := runner(r); rn != nil {
		return domain.RunnerCaller(rn)
	}
	return domain.UserCaller(principal(r).UserID)
}

// apiPrefix is the prefix of the routes the request came through, for
// Location headers: /api/v1/runner for runners, else /api/v1.
func apiPrefix(r *http.Request) string {
	if runner(r) != nil {
		return "/api/v1/runner"
	}
	return "/api/v1"
}

type rawBodyKey struct{}

// rawBody returns the request body without the server's general size cap
// (Config.MaxBodyBytes), for the upload handlers, which stream large bodies
// and enforce the artifact limit themselves.
func rawBody(r *http.Request) io.Reader {
	if b, ok := r.Context().Value(rawBodyKey{}).(io.Reader); ok {
		return b
	}
	return r.Body
}

// withRawBody keeps the uncapped body of r in its context.
func withRawBody(r *http.Request, body io.ReadCloser) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), rawBodyKey{}, io.Reader(body)))
}

// writeArtifactError writes err, answering TooLarge with 413.
func (s *Server) writeArtifactError(w http.ResponseWriter, r *http.Request, err error) {
	if domain.IsTooLarge(err) {
		s.writeErrorStatus(w, r, err, http.StatusRequestEntityTooLarge)
		return
	}
	s.writeError(w, r, err)
}

func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	opt, ok := s.listOptions(w, r)
	if !ok {
		return
	}
	as, next, err := s.svc.ListArtifacts(r.Context(), caller(r), id, opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(as, next, toArtifactJSON))
}

// uploadArtifact stores the request body as an artifact: ?name= names it,
// Content-Type is its type, and ?sha256= (optional) is the digest it must
// have.
func (s *Server) uploadArtifact(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	if max := s.svc.ArtifactMaxBytes(); r.ContentLength > max {
		s.writeArtifactError(w, r, domain.TooLarge(max))
		return
	}
	q := r.URL.Query()
	in := domain.ArtifactInput{Name: q.Get("name"), ContentType: r.Header.Get("Content-Type"), Digest: q.Get("sha256")}
	a, err := s.svc.UploadArtifact(r.Context(), caller(r), id, in, rawBody(r))
	if err != nil {
		s.writeArtifactError(w, r, err)
		return
	}
	w.Header().Set("Location", apiPrefix(r)+"/artifacts/"+a.ID.String())
	writeJSON(w, http.StatusCreated, toArtifactJSON(a))
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "artifactID")
	if !ok {
		return
	}
	a, err := s.svc.GetArtifact(r.Context(), caller(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toArtifactJSON(a))
}

func (s *Server) deleteArtifact(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "artifactID")
	if !ok {
		return
	}
	if err := s.svc.DeleteArtifact(r.Context(), principal(r).UserID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type downloadURLJSON struct {
	URL       string       `json:"url"`
	ExpiresAt time.Time    `json:"expires_at"`
	Artifact  artifactJSON `json:"artifact"`
}

// artifactDownloadURL answers a signed URL (relative to the server) that
// downloads the artifact without credentials until it expires.
func (s *Server) artifactDownloadURL(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "artifactID")
	if !ok {
		return
	}
	path := "/api/v1/artifacts/" + id.String() + "/download"
	a, query, expires, err := s.svc.SignArtifactDownload(r.Context(), caller(r), id, path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, downloadURLJSON{URL: path + "?" + query, ExpiresAt: expires, Artifact: toArtifactJSON(a)})
}

// downloadArtifact serves an artifact's content to a signed URL, with
// range requests, and records the download in the audit log.
func (s *Server) downloadArtifact(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "artifactID")
	if !ok {
		return
	}
	a, content, err := s.svc.OpenArtifactDownload(r.Context(), r.Method, r.URL.Path, r.URL.Query(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer content.Close()
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": downloadName(a.Name)}))
	h.Set("ETag", `"sha256:`+a.Digest+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w, s: s, r: r}, r, "", a.CreatedAt, content)
}

// rangeErrorWriter turns the plain-text 416 of http.ServeContent (a range
// outside the content) into the error envelope.
type rangeErrorWriter struct {
	http.ResponseWriter
	s      *Server
	r      *http.Request
	failed bool
}

func (w *rangeErrorWriter) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.failed = true
	w.Header().Del("X-Content-Type-Options")
	w.s.writeErrorStatus(w.ResponseWriter, w.r, domain.Errorf(domain.EInvalid, "The requested range is outside the content.").
		WithDetail("field", "Range"), status)
}

func (w *rangeErrorWriter) Write(b []byte) (int, error) {
	if w.failed {
		return len(b), nil // ServeContent's text; the envelope is written
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom lets the content go out through the underlying writer's
// ReadFrom, which sends a file with sendfile(2).
func (w *rangeErrorWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && !w.failed {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// downloadName is the last path element of an artifact name, for the
// Content-Disposition file name.
func downloadName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 && i < len(name)-1 {
		name = name[i+1:]
	}
	return name
}
