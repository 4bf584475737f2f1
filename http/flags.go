package http

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/flag"
)

// Feature flag, segment and config endpoints. Definitions travel as the
// JSON of package domain/flag (docs/flags.md), with the stored version and
// last change added in responses.

type storedJSON struct {
	Version   int64     `json:"version"`
	UpdatedBy uuid.UUID `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

type flagJSON struct {
	*flag.Flag
	storedJSON
}

type segmentJSON struct {
	*flag.Segment
	storedJSON
}

type configJSON struct {
	*domain.ConfigValue
	storedJSON
}

func toStoredJSON[T any](st domain.Stored[T]) storedJSON {
	return storedJSON{Version: st.Version, UpdatedBy: st.UpdatedBy, UpdatedAt: st.UpdatedAt}
}

func toFlagJSON(st domain.Stored[*flag.Flag]) flagJSON { return flagJSON{st.Item, toStoredJSON(st)} }

func toSegmentJSON(st domain.Stored[*flag.Segment]) segmentJSON {
	return segmentJSON{st.Item, toStoredJSON(st)}
}

func toConfigJSON(st domain.Stored[*domain.ConfigValue]) configJSON {
	return configJSON{st.Item, toStoredJSON(st)}
}

type itemsBody[T any] struct {
	Items []T `json:"items"`
}

func items[S, T any](in []S, conv func(S) T) itemsBody[T] {
	out := itemsBody[T]{Items: make([]T, 0, len(in))}
	for _, it := range in {
		out.Items = append(out.Items, conv(it))
	}
	return out
}

type flagEnvironmentJSON struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

// flagScope reads the project id and, when the route has one, the
// environment, or writes a 400 and returns false.
func (s *Server) flagScope(w http.ResponseWriter, r *http.Request) (uuid.UUID, string, bool) {
	id, ok := s.pathID(w, r, "projectID")
	return id, chi.URLParam(r, "environment"), ok
}

// respond writes v with status, or the error.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func (s *Server) listFlagEnvironments(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	envs, err := s.svc.FlagEnvironments(r.Context(), principal(r).UserID, p)
	s.respond(w, r, http.StatusOK, items(envs, func(e domain.FlagEnvironment) flagEnvironmentJSON {
		return flagEnvironmentJSON(e)
	}), err)
}

func (s *Server) listFlags(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	fs, err := s.svc.ListFlags(r.Context(), principal(r).UserID, p, env)
	s.respond(w, r, http.StatusOK, items(fs, toFlagJSON), err)
}

func (s *Server) getFlag(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	f, err := s.svc.GetFlag(r.Context(), principal(r).UserID, p, env, chi.URLParam(r, "flagKey"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFlagJSON(*f))
}

// keyFromPath checks that a body's key, if given, is the path's, and
// returns the path's.
func keyFromPath(r *http.Request, param, body string) (string, error) {
	key := chi.URLParam(r, param)
	if body != "" && body != key {
		return "", domain.Errorf(domain.EInvalid, "key %q differs from the key in the path, %q.", body, key).WithDetail("field", "key")
	}
	return key, nil
}

// putStatus is 201 for a created item, else 200.
func putStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) putFlag(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	var f flag.Flag
	if !s.decodeOrFail(w, r, &f) {
		return
	}
	var err error
	if f.Key, err = keyFromPath(r, "flagKey", f.Key); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, created, err := s.svc.PutFlag(r.Context(), principal(r).UserID, p, env, &f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, putStatus(created), toFlagJSON(*st))
}

func (s *Server) deleteFlag(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	err := s.svc.DeleteFlag(r.Context(), principal(r).UserID, p, env, chi.URLParam(r, "flagKey"))
	s.respond(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	segs, err := s.svc.ListSegments(r.Context(), principal(r).UserID, p)
	s.respond(w, r, http.StatusOK, items(segs, toSegmentJSON), err)
}

func (s *Server) getSegment(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	seg, err := s.svc.GetSegment(r.Context(), principal(r).UserID, p, chi.URLParam(r, "segmentKey"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSegmentJSON(*seg))
}

func (s *Server) putSegment(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	var seg flag.Segment
	if !s.decodeOrFail(w, r, &seg) {
		return
	}
	var err error
	if seg.Key, err = keyFromPath(r, "segmentKey", seg.Key); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, created, err := s.svc.PutSegment(r.Context(), principal(r).UserID, p, &seg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, putStatus(created), toSegmentJSON(*st))
}

func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	err := s.svc.DeleteSegment(r.Context(), principal(r).UserID, p, chi.URLParam(r, "segmentKey"))
	s.respond(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) listConfig(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	cs, err := s.svc.ListConfig(r.Context(), principal(r).UserID, p, env)
	s.respond(w, r, http.StatusOK, items(cs, toConfigJSON), err)
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	c, err := s.svc.GetConfig(r.Context(), principal(r).UserID, p, env, chi.URLParam(r, "configKey"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toConfigJSON(*c))
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	var c domain.ConfigValue
	if !s.decodeOrFail(w, r, &c) {
		return
	}
	var err error
	if c.Key, err = keyFromPath(r, "configKey", c.Key); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, created, err := s.svc.PutConfig(r.Context(), principal(r).UserID, p, env, &c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, putStatus(created), toConfigJSON(*st))
}

func (s *Server) deleteConfig(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	err := s.svc.DeleteConfig(r.Context(), principal(r).UserID, p, env, chi.URLParam(r, "configKey"))
	s.respond(w, r, http.StatusNoContent, nil, err)
}

// flagChangeJSON is one delta, as in the flags.changed event.
type flagChangeJSON struct {
	Version    int64           `json:"version"`
	Kind       string          `json:"kind"`
	Key        string          `json:"key"`
	Deleted    bool            `json:"deleted"`
	Definition json.RawMessage `json:"definition,omitempty"`
	ActorID    uuid.UUID       `json:"actor_id"`
	At         time.Time       `json:"at"`
}

type flagSyncJSON struct {
	Environment string           `json:"environment"`
	Version     int64            `json:"version"`
	Snapshot    bool             `json:"snapshot"`
	Changes     []flagChangeJSON `json:"changes,omitempty"`
	Flags       []flagJSON       `json:"flags,omitempty"`
	Segments    []segmentJSON    `json:"segments,omitempty"`
	Config      []configJSON     `json:"config,omitempty"`
}

func toFlagSyncJSON(fs *domain.FlagSync) flagSyncJSON {
	out := flagSyncJSON{Environment: fs.Environment, Version: fs.Version, Snapshot: fs.Snapshot}
	if !fs.Snapshot {
		out.Changes = make([]flagChangeJSON, 0, len(fs.Changes))
		for _, c := range fs.Changes {
			out.Changes = append(out.Changes, flagChangeJSON{Version: c.Version, Kind: c.Kind, Key: c.Key,
				Deleted: c.Data == nil, Definition: c.Data, ActorID: c.ActorID, At: c.At})
		}
		return out
	}
	out.Flags = items(fs.Flags, toFlagJSON).Items
	out.Segments = items(fs.Segments, toSegmentJSON).Items
	out.Config = items(fs.Config, toConfigJSON).Items
	return out
}

func (s *Server) flagChanges(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	since, err := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if err != nil {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "since must be an environment version (an integer, 0 or more).").WithDetail("field", "since"))
		return
	}
	fs, err := s.svc.FlagChanges(r.Context(), principal(r).UserID, p, env, since)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFlagSyncJSON(fs))
}

// evaluationJSON is one evaluation, shaped like OpenFeature's evaluation
// details.
type evaluationJSON struct {
	FlagKey      string          `json:"flag_key"`
	Value        json.RawMessage `json:"value"`
	Variant      string          `json:"variant,omitempty"`
	Reason       flag.Reason     `json:"reason"`
	ErrorCode    flag.ErrorCode  `json:"error_code,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
	FlagVersion  int64           `json:"flag_version"`
}

func toEvaluationJSON(e domain.FlagEvaluation) evaluationJSON {
	v := e.Value
	if v == nil {
		v = json.RawMessage("null")
	}
	return evaluationJSON{FlagKey: e.Key, Value: v, Variant: e.Variant, Reason: e.Reason,
		ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage, FlagVersion: e.FlagVersion}
}

type evaluateRequest struct {
	FlagKey string       `json:"flag_key"`
	Type    flag.Type    `json:"type"`
	Context flag.Context `json:"context"`
}

type evaluateBatchRequest struct {
	FlagKeys []string     `json:"flag_keys"`
	Type     flag.Type    `json:"type"`
	Context  flag.Context `json:"context"`
}

type evaluateBatchJSON struct {
	EnvironmentVersion int64            `json:"environment_version"`
	Evaluations        []evaluationJSON `json:"evaluations"`
}

func (s *Server) evaluateFlag(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	var req evaluateRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if req.FlagKey == "" {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "flag_key is required.").WithDetail("field", "flag_key"))
		return
	}
	_, evs, err := s.svc.EvaluateFlags(r.Context(), principal(r).UserID, p, env,
		domain.EvaluationRequest{Keys: []string{req.FlagKey}, Type: req.Type, Context: req.Context})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEvaluationJSON(evs[0]))
}

func (s *Server) evaluateFlags(w http.ResponseWriter, r *http.Request) {
	p, env, ok := s.flagScope(w, r)
	if !ok {
		return
	}
	var req evaluateBatchRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	v, evs, err := s.svc.EvaluateFlags(r.Context(), principal(r).UserID, p, env,
		domain.EvaluationRequest{Keys: req.FlagKeys, Type: req.Type, Context: req.Context})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, evaluateBatchJSON{EnvironmentVersion: v, Evaluations: items(evs, toEvaluationJSON).Items})
}

// flagRoutes mounts the flag endpoints on an authenticated router.
func (s *Server) flagRoutes(r chi.Router) {
	r.Get("/projects/{projectID}/flag-environments", s.listFlagEnvironments)
	r.Get("/projects/{projectID}/environments/{environment}/flags", s.listFlags)
	r.Get("/projects/{projectID}/environments/{environment}/flags/{flagKey}", s.getFlag)
	r.Put("/projects/{projectID}/environments/{environment}/flags/{flagKey}", s.putFlag)
	r.Delete("/projects/{projectID}/environments/{environment}/flags/{flagKey}", s.deleteFlag)
	r.Get("/projects/{projectID}/environments/{environment}/config", s.listConfig)
	r.Get("/projects/{projectID}/environments/{environment}/config/{configKey}", s.getConfig)
	r.Put("/projects/{projectID}/environments/{environment}/config/{configKey}", s.putConfig)
	r.Delete("/projects/{projectID}/environments/{environment}/config/{configKey}", s.deleteConfig)
	r.Get("/projects/{projectID}/environments/{environment}/changes", s.flagChanges)
	r.Post("/projects/{projectID}/environments/{environment}/evaluate", s.evaluateFlag)
	r.Post("/projects/{projectID}/environments/{environment}/evaluate-batch", s.evaluateFlags)
	r.Get("/projects/{projectID}/segments", s.listSegments)
	r.Get("/projects/{projectID}/segments/{segmentKey}", s.getSegment)
	r.Put("/projects/{projectID}/segments/{segmentKey}", s.putSegment)
	r.Delete("/projects/{projectID}/segments/{segmentKey}", s.deleteSegment)
	r.Get("/projects/{projectID}/sdk-keys", listIn(s, "projectID", s.svc.ListSDKKeys, toSDKKeyJSON))
	r.Post("/projects/{projectID}/sdk-keys", s.createSDKKey)
	r.Delete("/projects/{projectID}/sdk-keys/{keyID}", s.revokeSDKKey)
}
