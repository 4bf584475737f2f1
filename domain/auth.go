package domain

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Password length bounds, in bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// refreshTokenPrefix marks Tone refresh tokens so that leaked ones are easy to
// recognise in logs and by secret scanners.
const refreshTokenPrefix = "tnr_"

// Tokens is what a login or refresh returns.
type Tokens struct {
	IssuedAt         time.Time
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	UserID           uuid.UUID
	SessionID        uuid.UUID
}

// Registration is a request to create an account.
type Registration struct {
	Email       string
	Password    string
	DisplayName string
}

// NormalizeEmail validates an email address and returns it lower-cased.
// Returns EInvalid if it is not a plain address (no display name).
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return "", Errorf(EInvalid, "email is not a valid address.").WithDetail("field", "email")
	}
	return strings.ToLower(email), nil
}

func checkPasswordPolicy(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen || !utf8.ValidString(pw) {
		return Errorf(EInvalid, "password must be %d to %d bytes of UTF-8.", MinPasswordLen, MaxPasswordLen).WithDetail("field", "password")
	}
	return nil
}

// Register creates an account. It returns nil both when the account was
// created and when the email was already taken, and costs the same time in
// both cases, so that registration does not reveal which emails have
// accounts. Returns EInvalid for a bad email, password or display name.
func (s *Service) Register(ctx context.Context, r Registration) error {
	email, err := NormalizeEmail(r.Email)
	if err != nil {
		return err
	}
	if err := checkPasswordPolicy(r.Password); err != nil {
		return err
	}
	name := strings.TrimSpace(r.DisplayName)
	if name == "" {
		name = email[:strings.IndexByte(email, '@')]
	}
	if err := checkDisplayName(name); err != nil {
		return err
	}
	hash, err := HashPassword(r.Password, s.cfg.Password)
	if err != nil {
		return err
	}
	now := s.now()
	u := &User{ID: newID(), Email: email, PasswordHash: hash, DisplayName: name, Preferences: []byte("{}"), CreatedAt: now, UpdatedAt: now}
	err = s.store.InTx(ctx, u.ID, func(tx Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, u.ID, "user.register", "user", u.ID.String()))
	})
	if ErrorCode(err) == EConflict {
		return nil
	}
	return err
}

// Login checks an email and password and starts a session. Returns
// EUnauthenticated with the same message whether the email is unknown or the
// password wrong.
func (s *Service) Login(ctx context.Context, email, password string) (*Tokens, error) {
	bad := Errorf(EUnauthenticated, "Invalid email or password.")
	email, err := NormalizeEmail(email)
	if err != nil {
		CheckPassword(password, s.dummyHash)
		return nil, bad
	}
	var u *User
	err = s.store.InTx(ctx, uuid.Nil, func(tx Tx) error {
		u, err = tx.UserByEmail(ctx, email)
		return err
	})
	if ErrorCode(err) == ENotFound {
		CheckPassword(password, s.dummyHash)
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if !CheckPassword(password, u.PasswordHash) {
		ev := s.audit(ctx, u.ID, "auth.login", "user", u.ID.String())
		ev.Result = ResultFailure
		if err := s.store.InTx(ctx, u.ID, func(tx Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
			return nil, err
		}
		return nil, bad
	}
	var tokens *Tokens
	err = s.store.InTx(ctx, u.ID, func(tx Tx) error {
		tokens, err = s.issue(ctx, tx, u.ID, newID())
		if err != nil {
			return err
		}
		ev := s.audit(ctx, u.ID, "auth.login", "session", tokens.SessionID.String())
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return tokens, nil
}

// issue stores a new refresh token of family and signs an access token.
func (s *Service) issue(ctx context.Context, tx Tx, user, family uuid.UUID) (*Tokens, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	info := RequestInfoFrom(ctx)
	t := &RefreshToken{
		ID: newID(), FamilyID: family, UserID: user, Hash: hashToken(secret),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
		UserAgent: info.UserAgent, IP: info.IP,
	}
	if err := tx.CreateRefreshToken(ctx, t); err != nil {
		return nil, err
	}
	access, exp, err := s.cfg.Keys.Sign(user, family, now, s.cfg.AccessTTL)
	if err != nil {
		return nil, err
	}
	return &Tokens{
		IssuedAt:    now,
		AccessToken: access, AccessExpiresAt: exp,
		RefreshToken: secret, RefreshExpiresAt: t.ExpiresAt,
		UserID: user, SessionID: family,
	}, nil
}

func hashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

var errRefreshReuse = Errorf(EUnauthenticated, "Refresh token already used; the session has been revoked.")

// Refresh spends a refresh token and returns a new access and refresh token
// of the same session. A token is single use: spending it again within the
// grace window (two tabs refreshing at once) issues another token of the same
// session, so both callers keep working; spending it again later revokes the
// whole session, since the token has evidently leaked. Returns
// EUnauthenticated for an unknown, expired, revoked or reused token.
func (s *Service) Refresh(ctx context.Context, secret string) (*Tokens, error) {
	invalid := Errorf(EUnauthenticated, "Refresh token invalid or expired.")
	if !strings.HasPrefix(secret, refreshTokenPrefix) || len(secret) > 128 {
		return nil, invalid
	}
	hash := hashToken(secret)
	owner, err := s.tokenOwner(ctx, hash)
	if ErrorCode(err) == ENotFound {
		return nil, invalid
	}
	if err != nil {
		return nil, err
	}
	var tokens *Tokens
	reused := false
	err = s.store.InTx(ctx, owner, func(tx Tx) error {
		t, err := tx.RefreshTokenByHash(ctx, hash)
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case t.RevokedAt != nil, !now.Before(t.ExpiresAt):
			return invalid
		case t.UsedAt != nil && now.Sub(*t.UsedAt) > s.cfg.RefreshGrace:
			reused = true
			if err := tx.RevokeTokenFamily(ctx, t.FamilyID, now); err != nil {
				return err
			}
			ev := s.audit(ctx, t.UserID, "auth.refresh_reuse", "session", t.FamilyID.String())
			ev.Result = ResultFailure
			return tx.AppendAudit(ctx, ev)
		case t.UsedAt == nil:
			if err := tx.MarkRefreshTokenUsed(ctx, t.ID, now); err != nil {
				return err
			}
		}
		tokens, err = s.issue(ctx, tx, t.UserID, t.FamilyID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if reused {
		return nil, errRefreshReuse
	}
	return tokens, nil
}

// tokenOwner returns the user a refresh token belongs to, so that the
// transaction that spends it can run as that user. Returns ENotFound for an
// unknown token.
func (s *Service) tokenOwner(ctx context.Context, hash []byte) (uuid.UUID, error) {
	var owner uuid.UUID
	err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) error {
		t, err := tx.RefreshTokenByHash(ctx, hash)
		if err == nil {
			owner = t.UserID
		}
		return err
	})
	return owner, err
}

// Logout ends the session of a refresh token. An unknown or already revoked
// token is not an error: the session is over either way.
func (s *Service) Logout(ctx context.Context, secret string) error {
	if !strings.HasPrefix(secret, refreshTokenPrefix) || len(secret) > 128 {
		return nil
	}
	hash := hashToken(secret)
	owner, err := s.tokenOwner(ctx, hash)
	if ErrorCode(err) == ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	return s.store.InTx(ctx, owner, func(tx Tx) error {
		t, err := tx.RefreshTokenByHash(ctx, hash)
		if err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return nil
		}
		if err := tx.RevokeTokenFamily(ctx, t.FamilyID, s.now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, t.UserID, "auth.logout", "session", t.FamilyID.String()))
	})
}

// LogoutEverywhere ends every session of the actor. Access tokens already
// issued stay valid until they expire (at most the access token lifetime).
func (s *Service) LogoutEverywhere(ctx context.Context, actor uuid.UUID) error {
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		if err := tx.RevokeUserTokens(ctx, actor, s.now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, actor, "auth.logout_everywhere", "user", actor.String()))
	})
}

// Authenticate verifies an access token. Returns EUnauthenticated if it is
// malformed, forged, expired or meant for someone else.
func (s *Service) Authenticate(token string) (*Principal, error) {
	if token == "" {
		return nil, Errorf(EUnauthenticated, "Sign in first: no access token.")
	}
	p, err := s.cfg.Keys.Verify(token, s.now())
	if err != nil {
		var de *Error
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, Errorf(EUnauthenticated, "Access token invalid.")
	}
	return p, nil
}
