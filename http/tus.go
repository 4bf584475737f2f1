package http

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// Resumable uploads: the tus protocol 1.0.0 (https://tus.io/protocols/resumable-upload),
// core plus the creation, checksum (sha256), termination and expiration
// extensions.
//
//   - OPTIONS /api/v1/uploads tells what the server supports.
//   - POST .../deployments/{id}/uploads with Upload-Length and
//     Upload-Metadata (name, content_type, sha256) creates an upload; its
//     URL is in Location.
//   - HEAD on that URL answers the Upload-Offset the server has.
//   - PATCH (Content-Type application/offset+octet-stream, Upload-Offset,
//     optionally Upload-Checksum "sha256 <base64>") appends; a wrong offset
//     is 409, a checksum mismatch 460 and keeps nothing. The PATCH that
//     brings the last byte records the artifact; its id is in the
//     Tone-Artifact-ID response header.
//   - DELETE drops the upload.

// tus protocol constants.
const (
	tusVersion    = "1.0.0"
	tusExtensions = "creation,checksum,termination,expiration"
	tusChecksums  = "sha256"
	tusOffsetType = "application/offset+octet-stream"
	// StatusChecksumMismatch is the status tus gives a chunk whose checksum
	// does not match.
	StatusChecksumMismatch = 460
)

// tusHeaders sets the headers every tus response carries.
func tusHeaders(w http.ResponseWriter) {
	w.Header().Set("Tus-Resumable", tusVersion)
}

// tusCheckVersion answers 412 unless the request speaks tus 1.0.0.
func (s *Server) tusCheckVersion(w http.ResponseWriter, r *http.Request) bool {
	tusHeaders(w)
	if v := r.Header.Get("Tus-Resumable"); v != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		s.writeErrorStatus(w, r, domain.Errorf(domain.EInvalid, "Tus-Resumable must be %s (got %q).", tusVersion, v).
			WithDetail("field", "Tus-Resumable"), http.StatusPreconditionFailed)
		return false
	}
	return true
}

// writeTusError writes err with the statuses tus gives: 413 for too much,
// 460 for a checksum mismatch, the table's otherwise.
func (s *Server) writeTusError(w http.ResponseWriter, r *http.Request, err error) {
	if domain.IsChecksumMismatch(err) {
		s.writeErrorStatus(w, r, err, StatusChecksumMismatch)
		return
	}
	s.writeArtifactError(w, r, err)
}

// tusOptions answers tus discovery.
func (s *Server) tusOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	tusHeaders(w)
	h.Set("Tus-Version", tusVersion)
	h.Set("Tus-Extension", tusExtensions)
	h.Set("Tus-Checksum-Algorithm", tusChecksums)
	h.Set("Tus-Max-Size", strconv.FormatInt(s.svc.ArtifactMaxBytes(), 10))
	w.WriteHeader(http.StatusNoContent)
}

// parseTusMetadata reads Upload-Metadata: comma-separated pairs of a key and
// a base64 value (the value may be absent).
func parseTusMetadata(h string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(h) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(h, ",") {
		key, val, _ := strings.Cut(strings.TrimSpace(pair), " ")
		if key == "" {
			return nil, domain.Errorf(domain.EInvalid, "Upload-Metadata has an empty key.").WithDetail("field", "Upload-Metadata")
		}
		if _, dup := out[key]; dup {
			return nil, domain.Errorf(domain.EInvalid, "Upload-Metadata repeats key %q.", key).WithDetail("field", "Upload-Metadata")
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
		if err != nil {
			return nil, domain.Errorf(domain.EInvalid, "Upload-Metadata value of %q is not base64.", key).WithDetail("field", "Upload-Metadata")
		}
		out[key] = string(b)
	}
	return out, nil
}

// tusUploadJSON is the body of a created upload.
type tusUploadJSON struct {
	ID        uuid.UUID     `json:"id"`
	Offset    int64         `json:"offset"`
	Length    int64         `json:"length"`
	ExpiresAt time.Time     `json:"expires_at"`
	Artifact  *artifactJSON `json:"artifact,omitempty"`
}

// tusUploadHeaders sets the offset, length and expiry headers of u.
func tusUploadHeaders(w http.ResponseWriter, u *domain.Upload) {
	h := w.Header()
	h.Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	h.Set("Upload-Length", strconv.FormatInt(u.Length, 10))
	h.Set("Upload-Expires", u.ExpiresAt.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "no-store")
}

// tusCreate creates an upload (the creation extension). Metadata keys:
// name (or filename), content_type (or filetype), sha256 (hex digest of the
// whole content).
func (s *Server) tusCreate(w http.ResponseWriter, r *http.Request) {
	if !s.tusCheckVersion(w, r) {
		return
	}
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	if r.Header.Get("Upload-Defer-Length") != "" {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "Upload-Defer-Length is not supported; send Upload-Length.").WithDetail("field", "Upload-Defer-Length"))
		return
	}
	length, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	if err != nil || length < 0 {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "Upload-Length must be a non-negative integer.").WithDetail("field", "Upload-Length"))
		return
	}
	if max := s.svc.ArtifactMaxBytes(); length > max {
		s.writeArtifactError(w, r, domain.TooLarge(max))
		return
	}
	meta, err := parseTusMetadata(r.Header.Get("Upload-Metadata"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in := domain.ArtifactInput{Name: first(meta["name"], meta["filename"]), ContentType: first(meta["content_type"], meta["filetype"]), Digest: meta["sha256"]}
	u, a, err := s.svc.CreateUpload(r.Context(), caller(r), id, in, length)
	if err != nil {
		s.writeArtifactError(w, r, err)
		return
	}
	out := tusUploadJSON{ID: u.ID, Offset: u.Offset, Length: u.Length, ExpiresAt: u.ExpiresAt}
	if a != nil {
		j := toArtifactJSON(a)
		out.Artifact = &j
		out.Offset = u.Length
		w.Header().Set("Tone-Artifact-ID", a.ID.String())
	}
	w.Header().Set("Location", apiPrefix(r)+"/uploads/"+u.ID.String())
	w.Header().Set("Upload-Expires", u.ExpiresAt.UTC().Format(http.TimeFormat))
	writeJSON(w, http.StatusCreated, out)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tusHead answers the offset of an upload.
func (s *Server) tusHead(w http.ResponseWriter, r *http.Request) {
	if !s.tusCheckVersion(w, r) {
		return
	}
	id, ok := s.pathID(w, r, "uploadID")
	if !ok {
		return
	}
	u, err := s.svc.GetUpload(r.Context(), caller(r), id)
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		s.writeError(w, r, err)
		return
	}
	tusUploadHeaders(w, u)
	w.WriteHeader(http.StatusOK)
}

// tusPatch appends the body to an upload.
func (s *Server) tusPatch(w http.ResponseWriter, r *http.Request) {
	if !s.tusCheckVersion(w, r) {
		return
	}
	id, ok := s.pathID(w, r, "uploadID")
	if !ok {
		return
	}
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(mt) != tusOffsetType {
		s.writeErrorStatus(w, r, domain.Errorf(domain.EInvalid, "Content-Type must be %s.", tusOffsetType), http.StatusUnsupportedMediaType)
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "Upload-Offset must be a non-negative integer.").WithDetail("field", "Upload-Offset"))
		return
	}
	var sum []byte
	if c := r.Header.Get("Upload-Checksum"); c != "" {
		algo, b64, _ := strings.Cut(c, " ")
		if algo != "sha256" {
			s.writeError(w, r, domain.Errorf(domain.EInvalid, "Upload-Checksum algorithm %q is not supported; use sha256.", algo).WithDetail("field", "Upload-Checksum"))
			return
		}
		sum, err = base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(sum) != 32 {
			s.writeError(w, r, domain.Errorf(domain.EInvalid, "Upload-Checksum must be \"sha256 <base64 of 32 bytes>\".").WithDetail("field", "Upload-Checksum"))
			return
		}
	}
	u, a, err := s.svc.AppendUpload(r.Context(), caller(r), id, offset, rawBody(r), sum)
	if err != nil {
		if u != nil {
			// The body broke off; what arrived is kept. The client is most
			// likely gone, but tell it the offset anyway.
			tusUploadHeaders(w, u)
		}
		s.writeTusError(w, r, err)
		return
	}
	tusUploadHeaders(w, u)
	if a != nil {
		w.Header().Set("Tone-Artifact-ID", a.ID.String())
	}
	w.WriteHeader(http.StatusNoContent)
}

// tusDelete drops an upload (the termination extension).
func (s *Server) tusDelete(w http.ResponseWriter, r *http.Request) {
	if !s.tusCheckVersion(w, r) {
		return
	}
	id, ok := s.pathID(w, r, "uploadID")
	if !ok {
		return
	}
	if err := s.svc.CancelUpload(r.Context(), caller(r), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
