package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

var artifactTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"Artifacts", testArtifacts},
	{"ArtifactsRunner", testArtifactsRunner},
	{"ArtifactsUnreferenced", testArtifactsUnreferenced},
	{"ArtifactsProjectDelete", testArtifactsProjectDelete},
}

func newArtifact(d *domain.Deployment, name string, content []byte, by uuid.UUID) *domain.Artifact {
	return &domain.Artifact{
		ID: id(), ProjectID: d.ProjectID, DeploymentID: d.ID, Name: name, Size: int64(len(content)),
		Digest: sha(content), ContentType: "application/gzip", CreatedBy: by, CreatedAt: now,
	}
}

func testArtifacts(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	other := e.create(t, newDeployment(e.project, "staging", now))
	owner := e.owner.ID

	a := newArtifact(d, "dist.tar.gz", []byte("a"), owner)
	b := newArtifact(d, "report.html", []byte("b"), owner)
	c := newArtifact(other, "dist.tar.gz", []byte("a"), owner) // same name and content, other deployment
	for _, x := range []*domain.Artifact{a, b, c} {
		inTx(t, s, owner, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, x) })
	}
	var got *domain.Artifact
	inTx(t, s, owner, func(tx domain.Tx) (err error) { got, err = tx.ArtifactByID(ctx, a.ID); return })
	assert.Equal(t, a, got)

	dup := newArtifact(d, "dist.tar.gz", []byte("other"), owner)
	code(t, domain.EConflict, s.InTx(ctx, owner, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, dup) }), "name taken")
	stray := newArtifact(d, "x", []byte("x"), owner)
	stray.DeploymentID = id()
	code(t, domain.ENotFound, s.InTx(ctx, owner, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, stray) }), "no deployment")
	otherProject := newProject(t, s, e.ws, owner, "other")
	wrong := newArtifact(d, "y", []byte("y"), owner)
	wrong.ProjectID = otherProject.ID
	code(t, domain.ENotFound, s.InTx(ctx, owner, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, wrong) }),
		"deployment of another project")

	var list []*domain.Artifact
	inTx(t, s, owner, func(tx domain.Tx) (err error) {
		list, err = tx.ListArtifacts(ctx, d.ID, domain.Page{Limit: 10})
		return
	})
	assert.Equal(t, []*domain.Artifact{a, b}, list)
	inTx(t, s, owner, func(tx domain.Tx) (err error) {
		list, err = tx.ListArtifacts(ctx, d.ID, domain.Page{Limit: 10, After: a.ID})
		return
	})
	assert.Equal(t, []*domain.Artifact{b}, list)
	inTx(t, s, owner, func(tx domain.Tx) (err error) {
		list, err = tx.ListArtifacts(ctx, d.ID, domain.Page{Limit: 1})
		return
	})
	assert.Equal(t, []*domain.Artifact{a}, list)

	inTx(t, s, owner, func(tx domain.Tx) error { return tx.DeleteArtifact(ctx, a.ID) })
	code(t, domain.ENotFound, s.InTx(ctx, owner, func(tx domain.Tx) error { return tx.DeleteArtifact(ctx, a.ID) }))
	code(t, domain.ENotFound, s.InTx(ctx, owner, func(tx domain.Tx) error { _, err := tx.ArtifactByID(ctx, a.ID); return err }))
	// The name is free again.
	again := newArtifact(d, "dist.tar.gz", []byte("new"), owner)
	inTx(t, s, owner, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, again) })
}

// testArtifactsRunner checks that a runner (acting as its deploy token)
// reaches the artifacts of its own project.
func testArtifactsRunner(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	a := newArtifact(d, "bundle.js", []byte("js"), e.token.ID)
	inTx(t, s, e.token.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, a) })
	var got *domain.Artifact
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) { got, err = tx.ArtifactByID(ctx, a.ID); return })
	assert.Equal(t, a, got)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { got, err = tx.ArtifactByID(ctx, a.ID); return })
	assert.Equal(t, a, got)
	var list []*domain.Artifact
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) {
		list, err = tx.ListArtifacts(ctx, d.ID, domain.Page{Limit: 10})
		return
	})
	assert.Equal(t, []*domain.Artifact{a}, list)
}

func testArtifactsUnreferenced(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	f := newDeployEnv(t, s) // another tenant
	fd := f.create(t, newDeployment(f.project, "production", now))
	a := newArtifact(d, "a", []byte("a"), e.owner.ID)
	b := newArtifact(fd, "b", []byte("b"), f.owner.ID)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, a) })
	inTx(t, s, f.owner.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, b) })

	loose := sha([]byte("loose"))
	var got []string
	// The collector acts for nobody and still sees every tenant's references.
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) {
		got, err = tx.UnreferencedDigests(ctx, []string{a.Digest, b.Digest, loose, loose})
		return
	})
	assert.Equal(t, []string{loose}, got)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.UnreferencedDigests(ctx, nil); return })
	assert.Empty(t, got)

	// A digest stays referenced while any artifact refers to it.
	a2 := newArtifact(d, "a2", []byte("a"), e.owner.ID)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, a2) })
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteArtifact(ctx, a.ID) })
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.UnreferencedDigests(ctx, []string{a.Digest}); return })
	assert.Empty(t, got)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteArtifact(ctx, a2.ID) })
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.UnreferencedDigests(ctx, []string{a.Digest}); return })
	assert.Equal(t, []string{a.Digest}, got)
}

func testArtifactsProjectDelete(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now.Add(time.Minute)))
	a := newArtifact(d, "a", []byte("gone"), e.owner.ID)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, a) })
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteProject(ctx, e.project.ID) })
	var got []string
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.UnreferencedDigests(ctx, []string{a.Digest}); return })
	assert.Equal(t, []string{a.Digest}, got, "a deleted project's artifacts are gone")
	require.Error(t, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { _, err := tx.ArtifactByID(ctx, a.ID); return err }))
}
