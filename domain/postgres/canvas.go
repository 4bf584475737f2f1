package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tone-ai/tone/domain"
)

const canvasColumns = `c.id, c.project_id, c.name, c.created_by, c.created_at, c.updated_at`

func scanCanvas(row pgx.Row) (*domain.Canvas, error) {
	var c domain.Canvas
	if err := row.Scan(&c.ID, &c.ProjectID, &c.Name, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return nil, err
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return &c, nil
}

func (t *tx) CreateCanvas(ctx context.Context, c *domain.Canvas) (err error) {
	defer wrap(&err, "postgres: create canvas %s", c.ID)
	// Selecting the project makes a missing or invisible one insert nothing
	// instead of failing a foreign key or policy check.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO canvases (id, project_id, name, created_by, created_at, updated_at)
		SELECT $1, p.id, $3, $4, $5, $6 FROM projects p WHERE p.id = $2
		ON CONFLICT DO NOTHING`,
		c.ID, c.ProjectID, c.Name, c.CreatedBy, c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var projectOK bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM projects WHERE id = $1)`, c.ProjectID).Scan(&projectOK); err != nil {
		return err
	}
	if !projectOK {
		return notFound("Project")
	}
	return conflict("Canvas exists.")
}

func (t *tx) CanvasByID(ctx context.Context, id uuid.UUID) (_ *domain.Canvas, err error) {
	defer wrap(&err, "postgres: canvas %s", id)
	c, err := scanCanvas(t.tx.QueryRow(ctx, `SELECT `+canvasColumns+` FROM canvases c WHERE c.id = $1`, id))
	return c, mapErr(err, "Canvas")
}

// LockCanvas takes FOR NO KEY UPDATE (exclusive) or FOR SHARE (shared) on
// the canvas row. Neither conflicts with the FOR KEY SHARE locks that
// foreign key checks take, so appends go on meanwhile; renames (FOR NO KEY
// UPDATE) wait for both.
func (t *tx) LockCanvas(ctx context.Context, id uuid.UUID, exclusive bool) (_ *domain.Canvas, err error) {
	defer wrap(&err, "postgres: lock canvas %s", id)
	mode := `FOR SHARE`
	if exclusive {
		mode = `FOR NO KEY UPDATE`
	}
	c, err := scanCanvas(t.tx.QueryRow(ctx, `SELECT `+canvasColumns+` FROM canvases c WHERE c.id = $1 `+mode, id))
	return c, mapErr(err, "Canvas")
}

func (t *tx) ListCanvases(ctx context.Context, projectID uuid.UUID, p domain.Page) (_ []*domain.Canvas, err error) {
	defer wrap(&err, "postgres: list canvases of project %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+canvasColumns+`
		FROM canvases c
		WHERE c.project_id = $1 AND c.id > $2
		ORDER BY c.id
		LIMIT $3`,
		projectID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanCanvas)
}

func (t *tx) UpdateCanvas(ctx context.Context, c *domain.Canvas) (err error) {
	defer wrap(&err, "postgres: update canvas %s", c.ID)
	tag, err := t.tx.Exec(ctx, `UPDATE canvases SET name = $2, updated_at = $3 WHERE id = $1`, c.ID, c.Name, c.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Canvas")
	}
	return nil
}

func (t *tx) DeleteCanvas(ctx context.Context, id uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete canvas %s", id)
	// Claims, op log and snapshots go with it (ON DELETE CASCADE).
	tag, err := t.tx.Exec(ctx, `DELETE FROM canvases WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Canvas")
	}
	return nil
}

// seq converts a replica id or sequence number to the bigint it is stored as.
func seq(n uint64) (int64, error) {
	if n > domain.MaxCanvasSeq {
		return 0, domain.Errorf(domain.EInvalid, "Replica ids and sequence numbers must be at most %d.", uint64(domain.MaxCanvasSeq))
	}
	return int64(n), nil
}

// versionArrays encodes v as two arrays sorted by replica, without zero
// entries: the same vector always gives the same arrays.
func versionArrays(v domain.CanvasVersion) (replicas, seqs []int64, err error) {
	if err := v.Validate(); err != nil {
		return nil, nil, err
	}
	replicas, seqs = []int64{}, []int64{}
	for r, s := range v {
		if s > 0 {
			replicas = append(replicas, int64(r))
		}
	}
	slices.Sort(replicas)
	for _, r := range replicas {
		seqs = append(seqs, int64(v[uint64(r)]))
	}
	return replicas, seqs, nil
}

func versionFromArrays(replicas, seqs []int64) domain.CanvasVersion {
	v := make(domain.CanvasVersion, len(replicas))
	for i, r := range replicas {
		v[uint64(r)] = uint64(seqs[i])
	}
	return v
}

func (t *tx) ClaimCanvasReplica(ctx context.Context, canvasID uuid.UUID, replica uint64, user uuid.UUID) (err error) {
	defer wrap(&err, "postgres: claim replica %d of canvas %s", replica, canvasID)
	if replica == 0 {
		return domain.Errorf(domain.EInvalid, "Replica id 0 is reserved.")
	}
	r, err := seq(replica)
	if err != nil {
		return err
	}
	// owner returns the user replica is claimed by, or uuid.Nil.
	owner := func() (uuid.UUID, error) {
		var u uuid.UUID
		err := t.tx.QueryRow(ctx, `SELECT user_id FROM canvas_replicas WHERE canvas_id = $1 AND replica = $2`,
			canvasID, r).Scan(&u)
		if errors.Is(err, pgx.ErrNoRows) {
			return uuid.Nil, nil
		}
		return u, err
	}
	// Usually the replica is claimed already, by this user: one query.
	u, err := owner()
	if err != nil {
		return err
	}
	if u == uuid.Nil {
		tag, err := t.tx.Exec(ctx, `
			INSERT INTO canvas_replicas (canvas_id, replica, user_id)
			SELECT c.id, $2, $3 FROM canvases c WHERE c.id = $1
			ON CONFLICT DO NOTHING`,
			canvasID, r, user)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		// Someone claimed it meanwhile, or there is no such canvas.
		if u, err = owner(); err != nil {
			return err
		}
		if u == uuid.Nil {
			return notFound("Canvas")
		}
	}
	if u != user {
		return conflict("Replica %d of this canvas belongs to another user.", replica)
	}
	return nil
}

func (t *tx) AppendCanvasUpdates(ctx context.Context, us []*domain.CanvasUpdate) (err error) {
	defer wrap(&err, "postgres: append %d canvas updates", len(us))
	if len(us) == 0 {
		return nil
	}
	n := len(us)
	canvases, actors := make([]uuid.UUID, n), make([]uuid.UUID, n)
	replicas, firsts, lasts := make([]int64, n), make([]int64, n), make([]int64, n)
	data, ats := make([][]byte, n), make([]time.Time, n)
	for i, u := range us {
		if err := u.Validate(); err != nil {
			return err
		}
		canvases[i], actors[i], data[i], ats[i] = u.CanvasID, u.ActorID, u.Data, u.At
		replicas[i], firsts[i], lasts[i] = int64(u.Replica), int64(u.First), int64(u.Last)
		if data[i] == nil {
			data[i] = []byte{}
		}
	}
	// One statement: check that every canvas is visible and every replica
	// claimed by the entry's actor, and insert all entries (in order, so
	// that pos follows us) only if so. Claims never change once made, so
	// the check cannot go stale before commit.
	var canvasesOK, claimsOK bool
	err = t.tx.QueryRow(ctx, `
		WITH u AS (
			SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::uuid[], $7::timestamptz[])
				WITH ORDINALITY AS u (canvas_id, replica, first_seq, last_seq, data, actor_id, at, ord)
		), ok AS (
			SELECT
				(SELECT count(*) FROM canvases c WHERE c.id IN (SELECT canvas_id FROM u))
					= (SELECT count(DISTINCT canvas_id) FROM u) AS canvases,
				NOT EXISTS (SELECT FROM u WHERE NOT EXISTS (
					SELECT FROM canvas_replicas r
					WHERE r.canvas_id = u.canvas_id AND r.replica = u.replica AND r.user_id = u.actor_id)) AS claims
		), ins AS (
			INSERT INTO canvas_updates (canvas_id, replica, first_seq, last_seq, data, actor_id, at)
			SELECT canvas_id, replica, first_seq, last_seq, data, actor_id, at FROM u
			WHERE (SELECT canvases AND claims FROM ok)
			ORDER BY ord
			ON CONFLICT DO NOTHING
		)
		SELECT canvases, claims FROM ok`,
		canvases, replicas, firsts, lasts, data, actors, ats).Scan(&canvasesOK, &claimsOK)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation:
		// The canvas was deleted after the check (its claims with it).
		return notFound("Canvas")
	case err != nil:
		return err
	case !canvasesOK:
		return notFound("Canvas")
	case !claimsOK:
		return conflict("A canvas update's replica is not claimed by its actor.")
	}
	return nil
}

const updateColumns = `u.canvas_id, u.replica, u.first_seq, u.last_seq, u.data, u.actor_id, u.at`

func scanUpdate(row pgx.Row) (*domain.CanvasUpdate, error) {
	var u domain.CanvasUpdate
	var r, first, last int64
	if err := row.Scan(&u.CanvasID, &r, &first, &last, &u.Data, &u.ActorID, &u.At); err != nil {
		return nil, err
	}
	u.Replica, u.First, u.Last = uint64(r), uint64(first), uint64(last)
	u.At = u.At.UTC()
	return &u, nil
}

func (t *tx) CanvasUpdatesSince(ctx context.Context, canvasID uuid.UUID, v domain.CanvasVersion) (_ []*domain.CanvasUpdate, err error) {
	defer wrap(&err, "postgres: canvas %s updates since", canvasID)
	replicas, seqs, err := versionArrays(v)
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `
		SELECT `+updateColumns+`
		FROM canvas_updates u
		LEFT JOIN unnest($2::bigint[], $3::bigint[]) AS v (replica, seq) ON v.replica = u.replica
		WHERE u.canvas_id = $1 AND u.last_seq > coalesce(v.seq, 0)
		ORDER BY u.pos`,
		canvasID, replicas, seqs)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanUpdate)
}

func (t *tx) CompactCanvasUpdates(ctx context.Context, canvasID uuid.UUID, v domain.CanvasVersion) (err error) {
	defer wrap(&err, "postgres: compact canvas %s", canvasID)
	replicas, seqs, err := versionArrays(v)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(ctx, `
		DELETE FROM canvas_updates u
		USING unnest($2::bigint[], $3::bigint[]) AS v (replica, seq)
		WHERE u.canvas_id = $1 AND u.replica = v.replica AND u.last_seq <= v.seq`,
		canvasID, replicas, seqs)
	return err
}

func (t *tx) PutCanvasSnapshot(ctx context.Context, s *domain.CanvasSnapshot) (err error) {
	defer wrap(&err, "postgres: put snapshot %s of canvas %s", s.ID, s.CanvasID)
	replicas, seqs, err := versionArrays(s.Version)
	if err != nil {
		return err
	}
	data := s.Data
	if data == nil {
		data = []byte{}
	}
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO canvas_snapshots (id, canvas_id, name, version_replicas, version_seqs, data, created_by, created_at)
		SELECT $1, c.id, $3, $4, $5, $6, $7, $8 FROM canvases c WHERE c.id = $2
		ON CONFLICT DO NOTHING`,
		s.ID, s.CanvasID, s.Name, replicas, seqs, data, s.CreatedBy, s.CreatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var canvasOK bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM canvases WHERE id = $1)`, s.CanvasID).Scan(&canvasOK); err != nil {
		return err
	}
	if !canvasOK {
		return notFound("Canvas")
	}
	return conflict("Canvas snapshot exists.")
}

// snapshotColumns selects data only when asked to: listing versions must
// not read every document.
func snapshotColumns(withData bool) string {
	data := `NULL::bytea`
	if withData {
		data = `s.data`
	}
	return `s.id, s.canvas_id, s.name, s.version_replicas, s.version_seqs, ` + data + `, s.created_by, s.created_at`
}

func scanSnapshot(row pgx.Row) (*domain.CanvasSnapshot, error) {
	var s domain.CanvasSnapshot
	var replicas, seqs []int64
	if err := row.Scan(&s.ID, &s.CanvasID, &s.Name, &replicas, &seqs, &s.Data, &s.CreatedBy, &s.CreatedAt); err != nil {
		return nil, err
	}
	s.Version = versionFromArrays(replicas, seqs)
	s.CreatedAt = s.CreatedAt.UTC()
	return &s, nil
}

func (t *tx) LatestCanvasSnapshot(ctx context.Context, canvasID uuid.UUID) (_ *domain.CanvasSnapshot, err error) {
	defer wrap(&err, "postgres: latest snapshot of canvas %s", canvasID)
	s, err := scanSnapshot(t.tx.QueryRow(ctx, `
		SELECT `+snapshotColumns(true)+`
		FROM canvas_snapshots s
		WHERE s.canvas_id = $1 AND s.name = ''
		ORDER BY s.pos DESC
		LIMIT 1`,
		canvasID))
	return s, mapErr(err, "Canvas snapshot")
}

func (t *tx) ListCanvasVersions(ctx context.Context, canvasID uuid.UUID, p domain.Page) (_ []*domain.CanvasSnapshot, err error) {
	defer wrap(&err, "postgres: list versions of canvas %s", canvasID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+snapshotColumns(false)+`
		FROM canvas_snapshots s
		WHERE s.canvas_id = $1 AND s.name <> '' AND s.id > $2
		ORDER BY s.id
		LIMIT $3`,
		canvasID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanSnapshot)
}

func (t *tx) CanvasVersionByID(ctx context.Context, canvasID, id uuid.UUID) (_ *domain.CanvasSnapshot, err error) {
	defer wrap(&err, "postgres: version %s of canvas %s", id, canvasID)
	s, err := scanSnapshot(t.tx.QueryRow(ctx, `
		SELECT `+snapshotColumns(true)+`
		FROM canvas_snapshots s
		WHERE s.id = $2 AND s.canvas_id = $1 AND s.name <> ''`,
		canvasID, id))
	return s, mapErr(err, "Version")
}
