// Package regauth encodes and decodes registry credentials as docker's
// X-Registry-Auth: base64url of the JSON of an auth config. A service
// created with --with-registry-auth carries them to the nodes that pull
// its image; they are protected like secrets there (never shown by the
// API, logged or written to a node's disk).
package regauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Config is docker's auth config, as the JSON of X-Registry-Auth.
type Config struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// Encode is c as X-Registry-Auth.
func Encode(c Config) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// ErrMalformed is a registry auth that is not base64 of an auth config's
// JSON. Its message never holds the value.
var ErrMalformed = errors.New("registry auth is not base64url-encoded JSON of docker's auth config")

// Decode reads X-Registry-Auth (base64url or standard base64, padded or
// not, as docker takes it).
func Decode(s string) (Config, error) {
	s = strings.TrimSpace(s)
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return Config{}, ErrMalformed
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, ErrMalformed
	}
	return c, nil
}

// Authenticator is the library's authenticator for an encoded auth; nil
// (anonymous) for "".
func Authenticator(s string) (authn.Authenticator, error) {
	if s == "" {
		return nil, nil
	}
	c, err := Decode(s)
	if err != nil {
		return nil, err
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: c.Username, Password: c.Password, Auth: c.Auth,
		IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken,
	}), nil
}

// FromKeychain is the client's credentials for registry (as in an image
// reference: "registry.local:5000", or "index.docker.io"), from
// ~/.docker/config.json and its credential helpers; "" with no error
// when it has none.
func FromKeychain(kc authn.Keychain, registry string) (string, error) {
	a, err := kc.Resolve(resource(registry))
	if err != nil {
		return "", fmt.Errorf("credentials for %s: %w", registry, err)
	}
	if a == authn.Anonymous {
		return "", nil
	}
	ac, err := a.Authorization()
	if err != nil {
		return "", fmt.Errorf("credentials for %s: %w", registry, err)
	}
	if *ac == (authn.AuthConfig{}) {
		return "", nil
	}
	return Encode(Config{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken, ServerAddress: registry})
}

type resource string

func (r resource) String() string      { return string(r) }
func (r resource) RegistryStr() string { return string(r) }
