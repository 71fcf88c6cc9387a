package regauth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestRoundTrip(t *testing.T) {
	c := Config{Username: "alice", Password: "p@ss/+word", ServerAddress: "reg.local:5000"}
	s, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(s, "+/") {
		t.Errorf("not base64url: %s", s)
	}
	got, err := Decode(s)
	if err != nil || got != c {
		t.Fatalf("Decode(Encode) = %+v, %v", got, err)
	}
	std := base64.StdEncoding.EncodeToString([]byte(`{"username":"bob","password":"x"}`))
	if got, err := Decode(std); err != nil || got.Username != "bob" {
		t.Errorf("standard base64: %+v, %v", got, err)
	}
	for _, bad := range []string{"!!!", base64.URLEncoding.EncodeToString([]byte("not json"))} {
		if _, err := Decode(bad); err != ErrMalformed {
			t.Errorf("%q: %v", bad, err)
		}
	}
	a, err := Authenticator(s)
	if err != nil {
		t.Fatal(err)
	}
	if ac, _ := a.Authorization(); ac.Username != "alice" || ac.Password != "p@ss/+word" {
		t.Errorf("authenticator gives %+v", ac)
	}
	if a, err := Authenticator(""); a != nil || err != nil {
		t.Errorf("empty: %v %v", a, err)
	}
}

func TestFromKeychain(t *testing.T) {
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("carol:hunter2"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"reg.local:5000":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	s, err := FromKeychain(authn.DefaultKeychain, "reg.local:5000")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(s)
	if err != nil || c.Username != "carol" || c.Password != "hunter2" || c.ServerAddress != "reg.local:5000" {
		t.Fatalf("FromKeychain = %+v, %v", c, err)
	}
	if s, err := FromKeychain(authn.DefaultKeychain, "other.local"); s != "" || err != nil {
		t.Errorf("a registry without credentials: %q, %v", s, err)
	}
}
