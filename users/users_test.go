package users_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"heartlog/internal/heartlogtest"
	"heartlog/users"
)

func TestHashKeyAcceptsOnlyUUIDv4(t *testing.T) {
	base, err := users.HashKey("00000000-0000-4000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	for _, same := range []string{"waka_00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000001", "waka_00000000-0000-4000-8000-000000000001"} {
		if h, err := users.HashKey(same); err != nil || h != base {
			t.Errorf("HashKey(%q) = %x, %v; want the same key", same, h, err)
		}
	}
	for _, bad := range []string{
		"", "waka_", "not-a-key",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8",          // v1
		"00000000-0000-4000-c000-000000000001",          // wrong variant
		"{00000000-0000-4000-8000-000000000001}",        // braces
		"urn:uuid:00000000-0000-4000-8000-000000000001", // urn
		"waka_waka_00000000-0000-4000-8000-000000000001",
		"00000000000040008000000000000001",
	} {
		if _, err := users.HashKey(bad); !errors.Is(err, users.ErrMalformedKey) {
			t.Errorf("HashKey(%q) = %v, want ErrMalformedKey", bad, err)
		}
	}
	if !strings.HasPrefix(users.NewKey(), "waka_") {
		t.Error("new keys are not in WakaTime's waka_ form")
	}
	if _, err := users.HashKey(users.NewKey()); err != nil {
		t.Errorf("a fresh key does not validate: %v", err)
	}
}

func TestStoreKeepsOnlyTheHash(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	store, dir, _ := mirrored(t, pool)
	ctx := context.Background()
	u, key, err := store.Create(ctx, users.NewUser{Name: "alice", TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	var leaked int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE row_to_json(users)::text LIKE '%' || $1 || '%'",
		strings.TrimPrefix(key, "waka_")).Scan(&leaked); err != nil {
		t.Fatal(err)
	}
	if leaked != 0 {
		t.Fatal("the API key is stored in clear")
	}
	hash, _ := users.HashKey(key)
	got, err := dir.ByKey(ctx, hash)
	if err != nil || got.ID != u.ID || got.TimeZone != "Europe/Berlin" || got.ObjectPrefix == "" {
		t.Fatalf("ByKey = %+v, %v", got, err)
	}
	if _, _, err := store.Create(ctx, users.NewUser{Name: "mallory", APIKey: key}); !errors.Is(err, users.ErrKeyTaken) {
		t.Fatalf("second user with the same key: %v, want ErrKeyTaken", err)
	}
	if _, _, err := store.Create(ctx, users.NewUser{Name: "bob", TimeZone: "Nowhere/City"}); err == nil {
		t.Fatal("unknown time zone accepted")
	}
	other, _ := users.HashKey(users.NewKey())
	if _, err := dir.ByKey(ctx, other); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
}
