package memory_test

import (
	"testing"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) domain.Store { return memory.New() })
}
