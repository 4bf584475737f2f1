package domain_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

func TestSignedURL(t *testing.T) {
	s, err := domain.GenerateURLSigner()
	require.NoError(t, err)
	assert.True(t, s.Ephemeral())
	user := uuid.New()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const path = "/api/v1/artifacts/0193a0d6-0000-7000-8000-000000000001/blob"
	query := s.Sign("GET", path, user, now.Add(5*time.Minute))
	q, err := url.ParseQuery(query)
	require.NoError(t, err)

	got, err := s.Verify("GET", path, q, now)
	require.NoError(t, err)
	assert.Equal(t, user, got)
	_, err = s.Verify("GET", path, q, now.Add(5*time.Minute-time.Second))
	require.NoError(t, err, "valid until the last second")

	with := func(k, v string) url.Values {
		c := url.Values{}
		for kk, vv := range q {
			c[kk] = append([]string(nil), vv...)
		}
		c.Set(k, v)
		return c
	}
	other, err := domain.NewURLSigner(make([]byte, 32))
	require.NoError(t, err)
	otherQ, _ := url.ParseQuery(other.Sign("GET", path, user, now.Add(time.Hour)))
	for _, test := range []struct {
		name         string
		method, path string
		q            url.Values
		at           time.Time
	}{
		{"expired", "GET", path, q, now.Add(5 * time.Minute)},
		{"long expired", "GET", path, q, now.Add(24 * time.Hour)},
		{"method", "DELETE", path, q, now},
		{"method HEAD", "HEAD", path, q, now},
		{"path", "GET", path[:len(path)-1] + "2/blob", q, now},
		{"path suffix", "GET", path + "x", q, now},
		{"expiry pushed later", "GET", path, with(domain.SignedExpires, "9999999999"), now},
		{"expiry garbage", "GET", path, with(domain.SignedExpires, "soon"), now},
		{"user", "GET", path, with(domain.SignedUser, uuid.NewString()), now},
		{"user garbage", "GET", path, with(domain.SignedUser, "me"), now},
		{"signature flipped", "GET", path, with(domain.SignedSig, flip(q.Get(domain.SignedSig))), now},
		{"signature garbage", "GET", path, with(domain.SignedSig, "!!!"), now},
		{"no signature", "GET", path, with(domain.SignedSig, ""), now},
		{"nothing", "GET", path, url.Values{}, now},
		{"other key", "GET", path, otherQ, now},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := s.Verify(test.method, test.path, test.q, test.at)
			require.Error(t, err)
			assert.Equal(t, domain.EForbidden, domain.ErrorCode(err))
		})
	}

	_, err = domain.NewURLSigner(make([]byte, 31))
	require.Error(t, err, "short keys are refused")
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}
