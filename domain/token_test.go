package domain_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

func TestAccessTokenRoundTrip(t *testing.T) {
	k, err := domain.GenerateKeyring()
	require.NoError(t, err)
	user, session := uuid.New(), uuid.New()
	now := time.Now()
	tok, exp, err := k.Sign(user, session, now, 15*time.Minute)
	require.NoError(t, err)
	assert.WithinDuration(t, now.Add(15*time.Minute), exp, time.Second)
	p, err := k.Verify(tok, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, user, p.UserID)
	assert.Equal(t, session, p.SessionID)
}

// TestAccessTokenRejected covers the classic JWT attacks and mistakes: each
// token must be refused with EUnauthenticated.
func TestAccessTokenRejected(t *testing.T) {
	k, err := domain.GenerateKeyring()
	require.NoError(t, err)
	other, err := domain.GenerateKeyring()
	require.NoError(t, err)
	user, session := uuid.New(), uuid.New()
	now := time.Now()
	good, _, err := k.Sign(user, session, now, 15*time.Minute)
	require.NoError(t, err)
	parts := strings.Split(good, ".")
	require.Len(t, parts, 3)

	// The public key, as an attacker would find it, used as an HMAC secret.
	priv := privateKey(t, k)
	pub := priv.Public().(ed25519.PublicKey)
	claims := func(mod func(*domain.AccessClaims)) *domain.AccessClaims {
		c := &domain.AccessClaims{SessionID: session.String(), RegisteredClaims: jwt.RegisteredClaims{
			Issuer: domain.TokenIssuer, Subject: user.String(), Audience: jwt.ClaimStrings{domain.TokenAudience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, key any, c *domain.AccessClaims, kid string) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	kid := domain.KeyID(pub)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	for _, test := range []struct {
		name  string
		token string
		at    time.Time
	}{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), kid), now},
		{"HS256 with the public key as secret", sign(jwt.SigningMethodHS256, []byte(pub), claims(nil), kid), now},
		{"RS256 with an attacker key", sign(jwt.SigningMethodRS256, rsaKey, claims(nil), kid), now},
		{"signed by another key with our kid", sign(jwt.SigningMethodEdDSA, privateKey(t, other), claims(nil), kid), now},
		{"signed by another key with its own kid", sign(jwt.SigningMethodEdDSA, privateKey(t, other), claims(nil), domain.KeyID(privateKey(t, other).Public().(ed25519.PublicKey))), now},
		{"no kid", sign(jwt.SigningMethodEdDSA, priv, claims(nil), ""), now},
		{"expired", good, now.Add(16 * time.Minute)},
		{"no expiry", sign(jwt.SigningMethodEdDSA, priv, claims(func(c *domain.AccessClaims) { c.ExpiresAt = nil }), kid), now},
		{"wrong audience", sign(jwt.SigningMethodEdDSA, priv, claims(func(c *domain.AccessClaims) { c.Audience = jwt.ClaimStrings{"other-api"} }), kid), now},
		{"wrong issuer", sign(jwt.SigningMethodEdDSA, priv, claims(func(c *domain.AccessClaims) { c.Issuer = "evil" }), kid), now},
		{"subject not a uuid", sign(jwt.SigningMethodEdDSA, priv, claims(func(c *domain.AccessClaims) { c.Subject = "admin" }), kid), now},
		{"tampered payload", parts[0] + "." + tamper(t, parts[1]) + "." + parts[2], now},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipLast(parts[2]), now},
		{"garbage", "not.a.token", now},
		{"empty", "", now},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := k.Verify(test.token, test.at)
			require.Error(t, err)
			assert.Equal(t, domain.EUnauthenticated, domain.ErrorCode(err))
		})
	}
}

func TestKeyRotation(t *testing.T) {
	old, err := domain.GenerateKeyring()
	require.NoError(t, err)
	tok, _, err := old.Sign(uuid.New(), uuid.New(), time.Now(), time.Minute)
	require.NoError(t, err)

	_, next, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	oldPub := privateKey(t, old).Public().(ed25519.PublicKey)
	rotated := domain.NewKeyring(next, oldPub)
	_, err = rotated.Verify(tok, time.Now())
	assert.NoError(t, err, "a token of the retired key is still accepted")
	_, err = domain.NewKeyring(next).Verify(tok, time.Now())
	assert.Error(t, err, "once the retired key is dropped its tokens are refused")
}

func TestKeyringPEM(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pemBytes, err := domain.EncodePrivateKeyPEM(priv)
	require.NoError(t, err)
	k, err := domain.ParseKeyringPEM(pemBytes)
	require.NoError(t, err)
	assert.False(t, k.Ephemeral)
	tok, _, err := k.Sign(uuid.New(), uuid.New(), time.Now(), time.Minute)
	require.NoError(t, err)
	_, err = domain.NewKeyring(priv).Verify(tok, time.Now())
	assert.NoError(t, err)

	for _, bad := range []string{"", "garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		_, err := domain.ParseKeyringPEM([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

// privateKey extracts a keyring's signing key by signing with it: tests
// need it to forge tokens, and the keyring does not export it.
func privateKey(t *testing.T, k *domain.Keyring) ed25519.PrivateKey {
	t.Helper()
	return domain.SigningKeyForTest(k)
}

// tamper swaps the subject of a JWT payload for another user id, keeping
// the payload valid JSON, so only the signature can catch it.
func tamper(t *testing.T, payload string) string {
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	require.NoError(t, err)
	s := string(raw)
	i := strings.Index(s, `"sub":"`) + len(`"sub":"`)
	s = s[:i] + uuid.New().String() + s[i+36:]
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func flipLast(sig string) string {
	b := []byte(sig)
	if b[len(b)-2] == 'A' {
		b[len(b)-2] = 'B'
	} else {
		b[len(b)-2] = 'A'
	}
	return string(b)
}

func TestPasswordHash(t *testing.T) {
	p := domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}
	h, err := domain.HashPassword("correct horse", p)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$"))
	assert.True(t, domain.CheckPassword("correct horse", h))
	assert.False(t, domain.CheckPassword("correct horsE", h))
	h2, err := domain.HashPassword("correct horse", p)
	require.NoError(t, err)
	assert.NotEqual(t, h, h2, "salted")
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=999999999,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaA"} {
		assert.False(t, domain.CheckPassword("x", bad), bad)
	}
}
