package ca

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

const (
	tokenPrefix  = "SHOAL-1-"
	secretLength = 25
	digestLength = 50
)

// Token is a parsed join token: SHOAL-1-<CA digest>-<secret>.
type Token struct {
	Digest string
	Secret string
}

// String formats the token.
func (t Token) String() string { return tokenPrefix + t.Digest + "-" + t.Secret }

// NewToken makes a token for the CA with the given digest and a fresh
// random secret.
func NewToken(digest string) Token {
	max := new(big.Int).Exp(big.NewInt(36), big.NewInt(secretLength), nil)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		panic(err)
	}
	return Token{Digest: digest, Secret: fmt.Sprintf("%0*s", secretLength, n.Text(36))}
}

// ParseToken checks a token's shape.
func ParseToken(s string) (Token, error) {
	bad := func(why string) (Token, error) {
		return Token{}, fmt.Errorf("invalid join token: %s; copy it again from `shoal swarm join-token worker|manager` on a manager: %w", why, errdefs.ErrInvalid)
	}
	if !strings.HasPrefix(s, tokenPrefix) {
		return bad("it must start with " + tokenPrefix)
	}
	rest := strings.TrimPrefix(s, tokenPrefix)
	digest, secret, ok := strings.Cut(rest, "-")
	if !ok || len(digest) != digestLength || len(secret) != secretLength {
		return bad(fmt.Sprintf("want %s<%d characters>-<%d characters>", tokenPrefix, digestLength, secretLength))
	}
	for _, c := range digest + secret {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return bad("it may only hold 0-9 and a-z after the prefix")
		}
	}
	return Token{Digest: digest, Secret: secret}, nil
}

// Equal compares two tokens in constant time.
func (t Token) Equal(o Token) bool {
	return subtle.ConstantTimeCompare([]byte(t.String()), []byte(o.String())) == 1
}
