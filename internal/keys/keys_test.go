package keys

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func mustUnlockKey(t testing.TB) string {
	t.Helper()
	k, err := NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseUnlockKey(t *testing.T) {
	good := mustUnlockKey(t)
	secret := strings.TrimPrefix(good, unlockKeyPrefix)
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"as made", good, true},
		{"with a newline", good + "\n", true},
		{"with spaces", "  " + good + " ", true},
		{"empty", "", false},
		{"prefix only", unlockKeyPrefix, false},
		{"docker's prefix", "SWMKEY-1-" + secret, false},
		{"another version", "SHOALKEY-2-" + secret, false},
		{"lower case prefix", "shoalkey-1-" + secret, false},
		{"one character short", good[:len(good)-1], false},
		{"one character more", good + "A", false},
		{"padded", good + "=", false},
		{"not base64", unlockKeyPrefix + strings.Repeat("!", 43), false},
		{"a join token", "SHOAL-1-abc-def", false},
	} {
		k, err := ParseUnlockKey(tc.in)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: ParseUnlockKey = %v; want a key", tc.name, err)
		case !tc.ok && !errdefs.Is(err, errdefs.ErrInvalid):
			t.Errorf("%s: ParseUnlockKey = %v, %v; want an ErrInvalid error", tc.name, k, err)
		case !tc.ok && len(secret) > 8 && strings.Contains(err.Error(), secret[:8]):
			t.Errorf("%s: the error repeats the key: %v", tc.name, err)
		}
	}
}

func TestUnlockKeysAreRandomAndRedacted(t *testing.T) {
	a, b := mustUnlockKey(t), mustUnlockKey(t)
	if a == b {
		t.Fatal("two unlock keys are equal")
	}
	k, err := ParseUnlockKey(a)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(a, unlockKeyPrefix)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, k); strings.Contains(s, secret[:8]) {
			t.Errorf("fmt %s of an UnlockKey shows the key: %s", verb, s)
		}
	}
}

// secretsOf are the byte strings of m that must never be shown.
func noKeyBytes(t *testing.T, what string, m *Material, text string) {
	t.Helper()
	dek, err := m.DEK()
	if err != nil {
		return
	}
	for _, enc := range []string{string(dek), fmt.Sprintf("%x", dek), fmt.Sprintf("%v", dek)} {
		if strings.Contains(text, enc) {
			t.Errorf("%s shows the DEK: %s", what, text)
		}
	}
}

// The life of a manager's material: made with a local KEK, autolocked,
// read back locked, refused a wrong key, unlocked, rotated, and autolock
// turned off again; the DEK never changes and never shows.
func TestMaterialLifecycle(t *testing.T) {
	m, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if m.Autolocked() || m.Locked() {
		t.Fatalf("new material: Autolocked %v, Locked %v; want neither", m.Autolocked(), m.Locked())
	}
	dek, err := m.DEK()
	if err != nil || len(dek) != KeySize {
		t.Fatalf("DEK = %d bytes, %v", len(dek), err)
	}
	if err := m.Unlock(mustUnlockKey(t)); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock of material without autolock = %v; want ErrNotLocked", err)
	}
	// Stored and read back without autolock: unlocked, same DEK.
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil || back.Locked() || !back.SameDEK(m) {
		t.Fatalf("Parse(Marshal) = locked %v, same DEK %v, %v", back.Locked(), back.SameDEK(m), err)
	}

	key1 := mustUnlockKey(t)
	locked1, err := m.Rewrap(key1)
	if err != nil {
		t.Fatal(err)
	}
	if !locked1.Autolocked() || locked1.Locked() || !locked1.SameDEK(m) {
		t.Fatalf("Rewrap(key): Autolocked %v, Locked %v, same DEK %v; want autolocked, unlocked, same DEK", locked1.Autolocked(), locked1.Locked(), locked1.SameDEK(m))
	}
	if m.Autolocked() {
		t.Fatal("Rewrap changed its receiver")
	}
	data1, err := locked1.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data1, dek) {
		t.Fatal("autolocked material on disk holds the DEK")
	}
	if bytes.Contains(data1, []byte(strings.TrimPrefix(key1, unlockKeyPrefix))) {
		t.Fatal("autolocked material on disk holds the unlock key")
	}
	// Read back under autolock: locked until unlocked.
	r, err := Parse(data1)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Locked() || !r.Autolocked() {
		t.Fatalf("read back: Locked %v, Autolocked %v; want both", r.Locked(), r.Autolocked())
	}
	if _, err := r.DEK(); !errors.Is(err, ErrLocked) || !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("DEK of locked material = %v; want ErrLocked (failed precondition)", err)
	}
	for name, fn := range map[string]func() error{
		"Rewrap": func() error { _, err := r.Rewrap(""); return err },
		"Seal":   func() error { _, err := r.Seal([]byte("k")); return err },
		"Open":   func() error { _, err := r.Open([]byte("k")); return err },
	} {
		if err := fn(); !errors.Is(err, ErrLocked) {
			t.Errorf("%s of locked material = %v; want ErrLocked", name, err)
		}
	}
	wrong := mustUnlockKey(t)
	if err := r.Unlock(wrong); !errors.Is(err, ErrInvalidKey) || !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Unlock(wrong key) = %v; want ErrInvalidKey (invalid argument)", err)
	} else if strings.Contains(err.Error(), strings.TrimPrefix(wrong, unlockKeyPrefix)[:8]) {
		t.Errorf("the error repeats the key: %v", err)
	}
	if err := r.Unlock("SHOALKEY-1-short"); !errdefs.Is(err, errdefs.ErrInvalid) || errors.Is(err, ErrInvalidKey) {
		t.Errorf("Unlock(malformed) = %v; want the malformed-key error", err)
	}
	if !r.Locked() {
		t.Fatal("a refused key unlocked the material")
	}
	if err := r.Unlock(key1 + "\n"); err != nil {
		t.Fatalf("Unlock(right key) = %v", err)
	}
	if r.Locked() || !r.SameDEK(m) {
		t.Fatalf("after Unlock: Locked %v, same DEK %v", r.Locked(), r.SameDEK(m))
	}
	// The node key sealed with one KEK opens with the same material only.
	box, err := r.Seal([]byte("node key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := locked1.Open(box); err != nil || string(got) != "node key" {
		t.Fatalf("Open with the same KEK = %q, %v", got, err)
	}

	// Rotation: the old key no longer unlocks the new material.
	key2 := mustUnlockKey(t)
	locked2, err := r.Rewrap(key2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locked2.Open(box); err == nil {
		t.Error("the node key sealed with the old KEK opened with the new one")
	}
	data2, _ := locked2.Marshal()
	r2, err := Parse(data2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Unlock(key1); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("old key on rotated material = %v; want ErrInvalidKey", err)
	}
	if err := r2.Unlock(key2); err != nil || !r2.SameDEK(m) {
		t.Fatalf("new key on rotated material = %v (same DEK %v)", err, r2.SameDEK(m))
	}
	// Autolock off: a local KEK again, unlocked on reading.
	off, err := r2.Rewrap("")
	if err != nil {
		t.Fatal(err)
	}
	dataOff, _ := off.Marshal()
	r3, err := Parse(dataOff)
	if err != nil || r3.Autolocked() || r3.Locked() || !r3.SameDEK(m) {
		t.Fatalf("autolock off, read back: autolocked %v, locked %v, same DEK %v, %v", r3.Autolocked(), r3.Locked(), r3.SameDEK(m), err)
	}
	for _, mm := range []*Material{m, locked1, r, r2, r3} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			noKeyBytes(t, "fmt "+verb, mm, fmt.Sprintf(verb, mm))
		}
	}
}

// Property: any sequence of rewraps and round trips through disk keeps
// the DEK, and only the last key unlocks.
func TestRewrapProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, err := New()
		if err != nil {
			t.Fatal(err)
		}
		cur := m
		var keysSeen []string
		last := ""
		for i := range rapid.IntRange(1, 6).Draw(t, "steps") {
			k := ""
			if rapid.Bool().Draw(t, fmt.Sprintf("autolock%d", i)) {
				k, _ = NewUnlockKey()
				keysSeen = append(keysSeen, k)
			}
			next, err := cur.Rewrap(k)
			if err != nil {
				t.Fatal(err)
			}
			data, err := next.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if cur, err = Parse(data); err != nil {
				t.Fatal(err)
			}
			last = k
			if k != "" {
				for _, old := range keysSeen[:len(keysSeen)-1] {
					if err := cur.Unlock(old); !errors.Is(err, ErrInvalidKey) {
						t.Fatalf("an earlier key unlocked: %v", err)
					}
				}
				if err := cur.Unlock(k); err != nil {
					t.Fatal(err)
				}
			}
			if !cur.SameDEK(m) {
				t.Fatal("the DEK changed")
			}
		}
		if cur.Autolocked() != (last != "") {
			t.Fatalf("Autolocked %v after a last rewrap with a key: %v", cur.Autolocked(), last != "")
		}
	})
}

func TestParseRefusesCorruptMaterial(t *testing.T) {
	m, _ := New()
	good, _ := m.Marshal()
	locked, _ := m.Rewrap(mustUnlockKey(t))
	goodLocked, _ := locked.Marshal()
	flip := func(b []byte, at int) []byte {
		c := append([]byte(nil), b...)
		c[at] ^= 1
		return c
	}
	for name, data := range map[string][]byte{
		"empty":            nil,
		"not json":         []byte("SHOALKEY"),
		"version 2":        bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1),
		"no dek":           []byte(`{"version":1,"kek":"` + strings.Repeat("A", 43) + `="}`),
		"autolock no salt": bytes.Replace(goodLocked, []byte(`"salt"`), []byte(`"xsalt"`), 1),
		"kek changed":      flip(good, bytes.Index(good, []byte(`"kek":"`))+8),
	} {
		if _, err := Parse(data); err == nil || !errdefs.Is(err, errdefs.ErrFailedPrecond) {
			t.Errorf("Parse(%s) = %v; want a failed-precondition error", name, err)
		}
	}
}
