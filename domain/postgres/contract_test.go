package postgres_test

import (
	"testing"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/domain/storetest"
)

// TestContract runs the store contract suite against PostgreSQL, connected
// as the application role so that row-level security is in force.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.Store { return postgres.New(pgtest.New(t)) })
}
