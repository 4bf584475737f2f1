package domain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Access tokens are JWTs signed with Ed25519 ("EdDSA"). Verification pins
// that algorithm, requires a known key id (kid), and checks issuer, audience
// and expiry, so "none", HMAC-with-the-public-key and foreign keys are all
// rejected.
const (
	TokenIssuer   = "tone"
	TokenAudience = "tone-api"
	tokenAlg      = "EdDSA"
)

// Keyring signs access tokens with its current key and verifies tokens made
// by any of its keys, so a key can be rotated without logging everyone out.
// A Keyring is safe for concurrent use once built.
type Keyring struct {
	currentKID string
	signing    ed25519.PrivateKey
	verify     map[string]ed25519.PublicKey
	Ephemeral  bool // generated at start, not loaded: tokens die with the process
}

// NewKeyring returns a keyring that signs with current and also accepts
// tokens signed by older (retired) keys.
func NewKeyring(current ed25519.PrivateKey, older ...ed25519.PublicKey) *Keyring {
	k := &Keyring{signing: current, verify: map[string]ed25519.PublicKey{}}
	pub := current.Public().(ed25519.PublicKey)
	k.currentKID = KeyID(pub)
	k.verify[k.currentKID] = pub
	for _, o := range older {
		k.verify[KeyID(o)] = o
	}
	return k
}

// GenerateKeyring returns a keyring with a fresh random key, marked ephemeral.
func GenerateKeyring() (*Keyring, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := NewKeyring(priv)
	k.Ephemeral = true
	return k, nil
}

// ParseKeyringPEM reads PEM blocks: the first "PRIVATE KEY" (PKCS #8
// Ed25519) signs; further "PUBLIC KEY" blocks (PKIX Ed25519) are retired
// keys still accepted for verification.
func ParseKeyringPEM(data []byte) (*Keyring, error) {
	var priv ed25519.PrivateKey
	var older []ed25519.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			if priv != nil {
				return nil, errors.New("signing key file: more than one private key")
			}
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("signing key file: %w", err)
			}
			ek, ok := k.(ed25519.PrivateKey)
			if !ok {
				return nil, errors.New("signing key file: private key is not Ed25519")
			}
			priv = ek
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("signing key file: %w", err)
			}
			ek, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, errors.New("signing key file: public key is not Ed25519")
			}
			older = append(older, ek)
		default:
			return nil, fmt.Errorf("signing key file: unexpected PEM block %q", block.Type)
		}
	}
	if priv == nil {
		return nil, errors.New("signing key file: no PRIVATE KEY block")
	}
	return NewKeyring(priv, older...), nil
}

// EncodePrivateKeyPEM returns key as a PKCS #8 PEM block, the format
// ParseKeyringPEM reads.
func EncodePrivateKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// KeyID names a public key: the first 16 base64url characters of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16]
}

// AccessClaims are the claims of an access token. Subject is the user id and
// SessionID the refresh token family the token was issued for.
type AccessClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// Sign returns a signed access token for user and session, valid for ttl.
func (k *Keyring) Sign(user, session uuid.UUID, now time.Time, ttl time.Duration) (string, time.Time, error) {
	exp := now.Add(ttl)
	claims := AccessClaims{
		SessionID: session.String(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   user.String(),
			Audience:  jwt.ClaimStrings{TokenAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.currentKID
	s, err := t.SignedString(k.signing)
	return s, exp, err
}

// Principal is who an access token speaks for.
type Principal struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	ExpiresAt time.Time
}

// Verify checks an access token and returns whom it speaks for. Any failure
// is EUnauthenticated; the reason is in the message, never the key material.
func (k *Keyring) Verify(token string, now time.Time) (*Principal, error) {
	var claims AccessClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pub, ok := k.verify[kid]
		if !ok {
			return nil, errors.New("unknown key id")
		}
		return pub, nil
	},
		jwt.WithValidMethods([]string{tokenAlg}),
		jwt.WithIssuer(TokenIssuer),
		jwt.WithAudience(TokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, Errorf(EUnauthenticated, "Access token expired.")
		}
		return nil, Errorf(EUnauthenticated, "Access token invalid.")
	}
	uid, err := uuid.Parse(claims.Subject)
	if err != nil {
		return nil, Errorf(EUnauthenticated, "Access token invalid.")
	}
	sid, err := uuid.Parse(claims.SessionID)
	if err != nil {
		return nil, Errorf(EUnauthenticated, "Access token invalid.")
	}
	return &Principal{UserID: uid, SessionID: sid, ExpiresAt: claims.ExpiresAt.Time}, nil
}
