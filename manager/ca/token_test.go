package ca

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

const (
	goodDigest = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd" // 50
	goodSecret = "abcdefghijklmnopqrstuvwxy"                          // 25
)

func TestTokenRoundTrip(t *testing.T) {
	root, _ := newRoot(t)
	tok := NewToken(root.Digest)
	if tok.Digest != root.Digest {
		t.Errorf("NewToken digest = %q; want %q", tok.Digest, root.Digest)
	}
	if len(tok.Secret) != 25 {
		t.Errorf("secret %q has %d characters; want 25", tok.Secret, len(tok.Secret))
	}
	s := tok.String()
	if want := "SHOAL-1-" + root.Digest + "-" + tok.Secret; s != want {
		t.Errorf("String() = %q; want %q", s, want)
	}
	back, err := ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", s, err)
	}
	if back != tok {
		t.Errorf("ParseToken(String()) = %+v; want %+v", back, tok)
	}
	if !back.Equal(tok) {
		t.Error("parsed token is not Equal to the original")
	}
}

func TestNewTokenSecretsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		tok := NewToken(goodDigest)
		if seen[tok.Secret] {
			t.Fatalf("NewToken repeated secret %q", tok.Secret)
		}
		seen[tok.Secret] = true
		if len(tok.Secret) != 25 {
			t.Fatalf("secret %q has %d characters; want 25", tok.Secret, len(tok.Secret))
		}
		if _, err := ParseToken(tok.String()); err != nil {
			t.Fatalf("ParseToken(NewToken()) = %v", err)
		}
	}
}

func TestParseTokenMalformed(t *testing.T) {
	good := "SHOAL-1-" + goodDigest + "-" + goodSecret
	if _, err := ParseToken(good); err != nil {
		t.Fatalf("ParseToken(%q) = %v; the fixture must be valid", good, err)
	}
	shapeMsg := "want SHOAL-1-<50 characters>-<25 characters>"
	for _, tc := range []struct {
		name  string
		token string
		why   string // part of the message
	}{
		{"empty", "", "must start with SHOAL-1-"},
		{"no prefix", goodDigest + "-" + goodSecret, "must start with SHOAL-1-"},
		{"lower-case prefix", "shoal-1-" + goodDigest + "-" + goodSecret, "must start with SHOAL-1-"},
		{"other version", "SHOAL-2-" + goodDigest + "-" + goodSecret, "must start with SHOAL-1-"},
		{"swarm token", "SWMTKN-1-" + goodDigest + "-" + goodSecret, "must start with SHOAL-1-"},
		{"leading space", " " + good, "must start with SHOAL-1-"},
		{"prefix only", "SHOAL-1-", shapeMsg},
		{"missing secret", "SHOAL-1-" + goodDigest, shapeMsg},
		{"empty secret", "SHOAL-1-" + goodDigest + "-", shapeMsg},
		{"short digest", "SHOAL-1-" + goodDigest[:49] + "-" + goodSecret, shapeMsg},
		{"long digest", "SHOAL-1-" + goodDigest + "0-" + goodSecret, shapeMsg},
		{"short secret", "SHOAL-1-" + goodDigest + "-" + goodSecret[:24], shapeMsg},
		{"long secret", "SHOAL-1-" + goodDigest + "-" + goodSecret + "z", shapeMsg},
		{"extra part", good + "-" + goodSecret, shapeMsg},
		{"trailing newline", good + "\n", shapeMsg},
		{"upper-case digest", "SHOAL-1-" + strings.ToUpper(goodDigest) + "-" + goodSecret, "only hold 0-9 and a-z"},
		{"upper-case secret", "SHOAL-1-" + goodDigest + "-" + strings.ToUpper(goodSecret), "only hold 0-9 and a-z"},
		{"punctuation in digest", "SHOAL-1-" + goodDigest[:49] + "." + "-" + goodSecret, "only hold 0-9 and a-z"},
		{"underscore in secret", "SHOAL-1-" + goodDigest + "-" + goodSecret[:24] + "_", "only hold 0-9 and a-z"},
		{"non-ascii", "SHOAL-1-" + goodDigest + "-" + goodSecret[:23] + "é", "only hold 0-9 and a-z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken(tc.token)
			if err == nil {
				t.Fatalf("ParseToken(%q) = %+v; want an error", tc.token, tok)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ParseToken(%q) error %q is not ErrInvalid", tc.token, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "invalid join token") || !strings.Contains(msg, tc.why) {
				t.Errorf("ParseToken(%q) error %q; want it to say %q", tc.token, msg, tc.why)
			}
			// Tell the user where to get a good one.
			if !strings.Contains(msg, "shoal swarm join-token") {
				t.Errorf("ParseToken(%q) error %q does not say where to get a token", tc.token, msg)
			}
			if tok != (Token{}) {
				t.Errorf("ParseToken(%q) returned %+v with its error", tc.token, tok)
			}
		})
	}
}

func TestTokenEqual(t *testing.T) {
	a := Token{Digest: goodDigest, Secret: goodSecret}
	otherSecret := Token{Digest: goodDigest, Secret: "zzzzzzzzzzzzzzzzzzzzzzzzz"}
	otherDigest := Token{Digest: strings.Repeat("0", 50), Secret: goodSecret}
	for _, tc := range []struct {
		name string
		x, y Token
		want bool
	}{
		{"same", a, a, true},
		{"copy", a, Token{Digest: goodDigest, Secret: goodSecret}, true},
		{"other secret", a, otherSecret, false},
		{"other digest", a, otherDigest, false},
		{"empty", a, Token{}, false},
		{"prefix of secret", a, Token{Digest: goodDigest, Secret: goodSecret[:10]}, false},
		{"both empty", Token{}, Token{}, true},
	} {
		if got := tc.x.Equal(tc.y); got != tc.want {
			t.Errorf("%s: %v.Equal(%v) = %v; want %v", tc.name, tc.x, tc.y, got, tc.want)
		}
		if got := tc.y.Equal(tc.x); got != tc.want {
			t.Errorf("%s: Equal is not symmetric", tc.name)
		}
	}
}
