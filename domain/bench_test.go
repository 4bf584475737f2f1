package domain_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// BenchmarkHashPassword is the cost of one registration or login check
// with the default argon2id parameters.
func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := domain.HashPassword("correct horse battery staple", domain.DefaultPasswordParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAccessToken is the cost of authenticating one request.
func BenchmarkVerifyAccessToken(b *testing.B) {
	k, err := domain.GenerateKeyring()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok, _, err := k.Sign(uuid.New(), uuid.New(), now, 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}
