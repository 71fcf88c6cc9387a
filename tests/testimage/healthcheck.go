package testimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Healthcheck is a HEALTHCHECK in docker's JSON shape, as it is written to
// the image config's config.Healthcheck (durations in nanoseconds).
type Healthcheck struct {
	// Test is ["NONE"], ["CMD", args...] or ["CMD-SHELL", command].
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// withHealthcheck is img with h as its config's Healthcheck. The config is
// rewritten as JSON rather than through go-containerregistry's ConfigFile,
// which has no StartInterval.
func withHealthcheck(img v1.Image, h *Healthcheck) (v1.Image, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var cfg map[string]json.RawMessage
	if c, ok := doc["config"]; ok {
		if err := json.Unmarshal(c, &cfg); err != nil {
			return nil, err
		}
	}
	if cfg == nil {
		cfg = map[string]json.RawMessage{}
	}
	if cfg["Healthcheck"], err = json.Marshal(h); err != nil {
		return nil, err
	}
	if doc["config"], err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	if raw, err = json.Marshal(doc); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	sum := sha256.Sum256(raw)
	m.Config.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	m.Config.Size = int64(len(raw))
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&rawConfigCore{inner: img, config: raw, manifest: rawManifest, mediaType: mt})
}

// rawConfigCore is an image whose config bytes are given; its layers are
// those of inner.
type rawConfigCore struct {
	inner            v1.Image
	config, manifest []byte
	mediaType        types.MediaType
}

func (c *rawConfigCore) RawConfigFile() ([]byte, error)      { return c.config, nil }
func (c *rawConfigCore) MediaType() (types.MediaType, error) { return c.mediaType, nil }
func (c *rawConfigCore) RawManifest() ([]byte, error)        { return c.manifest, nil }

func (c *rawConfigCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(c.manifest))
	if err != nil {
		return nil, err
	}
	if h == m.Config.Digest {
		return partial.ConfigLayer(c)
	}
	l, err := c.inner.LayerByDigest(h)
	if err != nil {
		return nil, fmt.Errorf("testimage: layer %s: %w", h, err)
	}
	return l, nil
}
