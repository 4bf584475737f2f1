package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

func TestUpdateMe(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("ada")
	before, _ := a.me(u)
	assert.Equal(t, "ada", before.DisplayName)
	assert.Empty(t, before.AvatarURL)
	assert.Empty(t, before.TimeZone)
	assert.JSONEq(t, `{}`, string(before.Preferences))

	resp := a.do("PATCH", "/api/v1/me", u.Access, map[string]any{
		"display_name": "  Ada Lovelace  ",
		"avatar_url":   "https://example.com/ada.png",
		"time_zone":    "Europe/London",
		"preferences":  map[string]any{"theme": "dark", "grid": map[string]any{"snap": true}},
	})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var updated userJSON
	resp.decode(t, &updated)
	assert.Equal(t, "Ada Lovelace", updated.DisplayName, "surrounding spaces are trimmed")
	assert.Equal(t, "https://example.com/ada.png", updated.AvatarURL)
	assert.Equal(t, "Europe/London", updated.TimeZone)
	assert.JSONEq(t, `{"theme":"dark","grid":{"snap":true}}`, string(updated.Preferences))
	assert.Equal(t, before.Email, updated.Email)
	assert.Equal(t, before.CreatedAt, updated.CreatedAt)
	assert.False(t, updated.UpdatedAt.Before(before.UpdatedAt))
	got, _ := a.me(u)
	assert.Equal(t, updated, got, "GET /me shows the update")

	// Absent fields stay; empty strings clear.
	resp = a.do("PATCH", "/api/v1/me", u.Access, map[string]any{"avatar_url": "", "time_zone": ""})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	got, _ = a.me(u)
	assert.Equal(t, "Ada Lovelace", got.DisplayName)
	assert.Empty(t, got.AvatarURL)
	assert.Empty(t, got.TimeZone)
	assert.JSONEq(t, `{"theme":"dark","grid":{"snap":true}}`, string(got.Preferences))
	resp = a.do("PATCH", "/api/v1/me", u.Access, map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	after, _ := a.me(u)
	assert.Equal(t, got.DisplayName, after.DisplayName)
}

func TestUpdateMeRejectsBadFields(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("ada")
	resp := a.do("PATCH", "/api/v1/me", u.Access, map[string]any{
		"display_name": "Ada", "avatar_url": "https://example.com/a.png", "time_zone": "Asia/Tokyo",
		"preferences": map[string]any{"theme": "light"},
	})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	before, _ := a.me(u)

	bigPrefs := map[string]any{"blob": strings.Repeat("p", domain.MaxPreferencesBytes)}
	for _, test := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"javascript avatar", map[string]any{"avatar_url": "javascript:alert(1)"}, "avatar_url"},
		{"ftp avatar", map[string]any{"avatar_url": "ftp://example.com/a.png"}, "avatar_url"},
		{"relative avatar", map[string]any{"avatar_url": "/a.png"}, "avatar_url"},
		{"overlong avatar", map[string]any{"avatar_url": "https://example.com/" + strings.Repeat("a", domain.MaxAvatarURLLen)}, "avatar_url"},
		{"unknown time zone", map[string]any{"time_zone": "Mars/Olympus_Mons"}, "time_zone"},
		{"Local time zone", map[string]any{"time_zone": "Local"}, "time_zone"},
		{"oversized preferences", map[string]any{"preferences": bigPrefs}, "preferences"},
		{"preferences not an object", map[string]any{"preferences": []any{1, 2}}, "preferences"},
		{"preferences null", map[string]any{"preferences": nil}, "preferences"},
		{"blank display name", map[string]any{"display_name": "   "}, "display_name"},
		{"overlong display name", map[string]any{"display_name": strings.Repeat("n", domain.MaxDisplayNameLen+1)}, "display_name"},
		// One bad field spoils the whole update: the good ones are not applied either.
		{"good name, bad zone", map[string]any{"display_name": "Countess", "time_zone": "Nowhere/Town"}, "time_zone"},
		{"good zone, bad avatar", map[string]any{"time_zone": "UTC", "avatar_url": "mailto:ada@example.com"}, "avatar_url"},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			resp := a.do("PATCH", "/api/v1/me", u.Access, test.body)
			require.Equal(t, http.StatusBadRequest, resp.Status, resp.String())
			assert.Equal(t, domain.EInvalid, resp.errCode())
			assert.Equal(t, test.field, resp.errDetails()["field"])
			after, _ := a.me(u)
			assert.Equal(t, before, after, "a rejected update changed the profile")
		})
	}
}

func TestPublicProfile(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	ada, bob, stranger := a.signUp("ada"), a.signUp("bob"), a.signUp("stranger")
	guest := a.signUp("guest")
	resp := a.do("PATCH", "/api/v1/me", ada.Access, map[string]any{
		"avatar_url": "https://example.com/ada.png", "time_zone": "Europe/London",
		"preferences": map[string]any{"secret": "only mine"},
	})
	require.Equal(t, http.StatusOK, resp.Status)
	ws := a.createWorkspace(ada, "Shared")
	a.addMember(ada, "workspaces", ws, bob, domain.RoleViewer)
	project := a.createProject(ada, ws, "Side")
	a.addMember(ada, "projects", project, guest, domain.RoleViewer)
	path := "/api/v1/users/" + ada.ID.String()

	for _, who := range []*testUser{bob, guest, ada} {
		resp := a.do("GET", path, who.Access, nil)
		require.Equal(t, http.StatusOK, resp.Status, resp.String())
		var got map[string]any
		require.NoError(t, json.Unmarshal(resp.Body, &got))
		assert.Equal(t, map[string]any{
			"id": ada.ID.String(), "display_name": "ada",
			"avatar_url": "https://example.com/ada.png", "time_zone": "Europe/London",
		}, got, "the public profile has no email and no preferences")
	}

	resp = a.do("GET", path, stranger.Access, nil)
	require.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	assert.Equal(t, domain.ENotFound, resp.errCode())
	missing := a.do("GET", "/api/v1/users/"+uuid.NewString(), stranger.Access, nil)
	require.Equal(t, http.StatusNotFound, missing.Status)
	assert.Equal(t, missing.errMessage(t), resp.errMessage(t), "a stranger cannot tell that the user exists")

	// Sharing ends with the membership.
	require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/workspaces/"+ws.String()+"/members/"+bob.ID.String(), bob.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, a.do("GET", path, bob.Access, nil).Status)
}
