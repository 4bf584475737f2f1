package domain

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Profile limits.
const (
	MaxDisplayNameLen   = 100  // code points
	MaxAvatarURLLen     = 2048 // bytes
	MaxPreferencesBytes = 4096 // bytes of compact JSON
)

// PublicProfile is what co-members see of a user.
type PublicProfile struct {
	ID          uuid.UUID
	DisplayName string
	AvatarURL   string
	TimeZone    string
}

// ProfileUpdate changes the fields that are set; nil fields stay as they are.
type ProfileUpdate struct {
	DisplayName *string
	AvatarURL   *string
	TimeZone    *string
	Preferences json.RawMessage // a JSON object replacing the old one
}

func checkDisplayName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxDisplayNameLen || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return Errorf(EInvalid, "display_name must be 1 to %d printable characters.", MaxDisplayNameLen).WithDetail("field", "display_name")
	}
	return nil
}

func checkAvatarURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || len(s) > MaxAvatarURLLen || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Errorf(EInvalid, "avatar_url must be an absolute http(s) URL of at most %d bytes.", MaxAvatarURLLen).WithDetail("field", "avatar_url")
	}
	return nil
}

func checkTimeZone(tz string) error {
	if tz == "" {
		return nil
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		return Errorf(EInvalid, "time_zone must be an IANA time zone name such as Europe/Paris.").WithDetail("field", "time_zone")
	}
	return nil
}

// compactPreferences validates a preferences document and returns it compacted.
func compactPreferences(raw json.RawMessage) (json.RawMessage, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, Errorf(EInvalid, "preferences must be a JSON object.").WithDetail("field", "preferences")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Errorf(EInvalid, "preferences must be a JSON object.").WithDetail("field", "preferences")
	}
	if buf.Len() > MaxPreferencesBytes {
		return nil, Errorf(EInvalid, "preferences must be at most %d bytes.", MaxPreferencesBytes).WithDetail("field", "preferences")
	}
	return buf.Bytes(), nil
}

// Me returns the actor's own account.
func (s *Service) Me(ctx context.Context, actor uuid.UUID) (*User, error) {
	var u *User
	err := s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		u, err = tx.UserByID(ctx, actor)
		return err
	})
	return u, err
}

// UpdateMe changes the actor's profile. Returns EInvalid, changing nothing,
// if any field is invalid.
func (s *Service) UpdateMe(ctx context.Context, actor uuid.UUID, up ProfileUpdate) (*User, error) {
	if up.DisplayName != nil {
		name := strings.TrimSpace(*up.DisplayName)
		if err := checkDisplayName(name); err != nil {
			return nil, err
		}
		up.DisplayName = &name
	}
	if up.AvatarURL != nil {
		if err := checkAvatarURL(*up.AvatarURL); err != nil {
			return nil, err
		}
	}
	if up.TimeZone != nil {
		if err := checkTimeZone(*up.TimeZone); err != nil {
			return nil, err
		}
	}
	var prefs json.RawMessage
	if up.Preferences != nil {
		var err error
		if prefs, err = compactPreferences(up.Preferences); err != nil {
			return nil, err
		}
	}
	var u *User
	err := s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		u, err = tx.UserByID(ctx, actor)
		if err != nil {
			return err
		}
		changed := []string{}
		if up.DisplayName != nil {
			u.DisplayName = *up.DisplayName
			changed = append(changed, "display_name")
		}
		if up.AvatarURL != nil {
			u.AvatarURL = *up.AvatarURL
			changed = append(changed, "avatar_url")
		}
		if up.TimeZone != nil {
			u.TimeZone = *up.TimeZone
			changed = append(changed, "time_zone")
		}
		if prefs != nil {
			u.Preferences = prefs
			changed = append(changed, "preferences")
		}
		u.UpdatedAt = s.now()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "user.update", "user", actor.String())
		ev.Details = map[string]any{"fields": changed}
		return tx.AppendAudit(ctx, ev)
	})
	return u, err
}

// Profile returns the public profile of user id. The actor sees their own
// profile and those of users they share a workspace or project with; anyone
// else is ENotFound.
func (s *Service) Profile(ctx context.Context, actor, id uuid.UUID) (*PublicProfile, error) {
	var p *PublicProfile
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		if actor != id {
			ok, err := tx.AreCoMembers(ctx, actor, id)
			if err != nil {
				return err
			}
			if !ok {
				return notFound("User")
			}
		}
		u, err := tx.UserByID(ctx, id)
		if err != nil {
			return err
		}
		p = &PublicProfile{ID: u.ID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL, TimeZone: u.TimeZone}
		return nil
	})
	return p, err
}
