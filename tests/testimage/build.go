package testimage

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every time in the image (files, config, history), so the same
// inputs give the same digest.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultBusybox is where Debian's busybox-static puts its binary.
const DefaultBusybox = "/bin/busybox"

// DefaultPath is the image's PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options vary the image. The zero value is the plain whoami image, tag
// "latest".
type Options struct {
	// Tag goes to /app/version, WHOAMI_IMAGE and the label
	// org.opencontainers.image.version. Default "latest".
	Tag string
	// Files are added to the app layer: path in the image → content.
	// Parents are created (0755); files are 0644, or 0755 when the
	// content starts with "#!". Different Files make different images.
	Files map[string]string

	// Entrypoint and Cmd replace ["/whoami"] and ["serve","-port","80"]
	// when not nil; an empty, non-nil slice clears them.
	Entrypoint, Cmd []string
	// Env entries ("K=V") replace the default of the same key (PATH,
	// WHOAMI_IMAGE) or are added after them.
	Env []string
	// User, WorkingDir and StopSignal replace "" (root), "/" and
	// "SIGTERM" when not empty.
	User, WorkingDir, StopSignal string
	// Labels are added to (or replace) org.shoal.test=1 and
	// org.opencontainers.image.version.
	Labels map[string]string

	// RandomMB, when positive, adds a third layer holding /random.bin:
	// RandomMB MiB of incompressible bytes from RandomSeed, for pull
	// throughput benchmarks. The layer is cached in CacheDir.
	RandomMB   int
	RandomSeed uint64

	// Busybox is the static busybox copied to /bin/busybox; default
	// DefaultBusybox.
	Busybox string

	// Healthcheck, when not nil, is the image's HEALTHCHECK
	// (config.Healthcheck of its config), e.g. {Test: ["NONE"]} or
	// {Test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"], Interval: time.Second}.
	Healthcheck *Healthcheck

	// Volumes are the image's VOLUME paths.
	Volumes []string
}

// Built is a built image.
type Built struct {
	Image  v1.Image
	Digest v1.Hash // of the manifest; "ADDR/whoami@"+Digest.String() pins it
	Tag    string  // Options.Tag, or "latest"
	Size   int64   // bytes to pull: config and compressed layers
	Binary string  // the static whoami binary, to run on the host
}

// Build builds the workload in dir (see BuildWhoami; "" is the embedded
// whoami, what tests want) and packs it with opts as a deterministic OCI
// image. It fails with a hint when /bin/busybox (package busybox-static) is
// missing.
func Build(dir string, opts Options) (Built, error) {
	if opts.Tag == "" {
		opts.Tag = "latest"
	}
	bbPath := opts.Busybox
	if bbPath == "" {
		bbPath = DefaultBusybox
	}
	busybox, err := readStaticELF(bbPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Built{}, fmt.Errorf("testimage: %s is missing: run `apt-get install -y busybox-static` (the image's base layer is the host's static busybox)", bbPath)
	}
	if err != nil {
		return Built{}, fmt.Errorf("testimage: busybox: %w; install the static one with `apt-get install -y busybox-static`", err)
	}
	bin, err := BuildWhoami(dir)
	if err != nil {
		return Built{}, err
	}
	whoami, err := readStaticELF(bin)
	if err != nil {
		return Built{}, fmt.Errorf("testimage: whoami: %w", err)
	}

	base, err := gzipLayer(baseEntries(busybox))
	if err != nil {
		return Built{}, err
	}
	appFiles, err := appEntries(whoami, opts.Tag, opts.Files)
	if err != nil {
		return Built{}, err
	}
	app, err := gzipLayer(appFiles)
	if err != nil {
		return Built{}, err
	}
	adds := []mutate.Addendum{
		{Layer: base, History: history("base: busybox, users, directories")},
		{Layer: app, History: history("app: /whoami " + opts.Tag)},
	}
	if opts.RandomMB > 0 {
		rnd, err := randomLayer(opts.RandomMB, opts.RandomSeed)
		if err != nil {
			return Built{}, err
		}
		adds = append(adds, mutate.Addendum{Layer: rnd, History: history(fmt.Sprintf("random: %d MiB, seed %d", opts.RandomMB, opts.RandomSeed))})
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return Built{}, fmt.Errorf("testimage: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Built{}, fmt.Errorf("testimage: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = runtime.GOARCH
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Author = "shoal tests/testimage"
	cf.Config = config(opts)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return Built{}, fmt.Errorf("testimage: %w", err)
	}
	if opts.Healthcheck != nil {
		if img, err = withHealthcheck(img, opts.Healthcheck); err != nil {
			return Built{}, fmt.Errorf("testimage: healthcheck: %w", err)
		}
	}

	b := Built{Image: img, Tag: opts.Tag, Binary: bin}
	if b.Digest, err = img.Digest(); err != nil {
		return Built{}, fmt.Errorf("testimage: %w", err)
	}
	if b.Size, err = imageSize(img); err != nil {
		return Built{}, err
	}
	return b, nil
}

func history(what string) v1.History {
	return v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "shoal testimage " + what}
}

// config is the image's runtime configuration for opts.
func config(opts Options) v1.Config {
	c := v1.Config{
		Entrypoint:   []string{"/whoami"},
		Cmd:          []string{"serve", "-port", "80"},
		Env:          mergeEnv([]string{"PATH=" + DefaultPath, "WHOAMI_IMAGE=" + opts.Tag}, opts.Env),
		User:         opts.User,
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.shoal.test":                   "1",
			"org.opencontainers.image.version": opts.Tag,
		},
	}
	if opts.Entrypoint != nil {
		c.Entrypoint = append([]string{}, opts.Entrypoint...)
	}
	if opts.Cmd != nil {
		c.Cmd = append([]string{}, opts.Cmd...)
	}
	if opts.WorkingDir != "" {
		c.WorkingDir = opts.WorkingDir
	}
	if opts.StopSignal != "" {
		c.StopSignal = opts.StopSignal
	}
	for k, v := range opts.Labels {
		c.Labels[k] = v
	}
	if len(opts.Volumes) > 0 {
		c.Volumes = map[string]struct{}{}
		for _, v := range opts.Volumes {
			c.Volumes[v] = struct{}{}
		}
	}
	return c
}

// mergeEnv replaces entries of env by those of over with the same key and
// appends the others, in order.
func mergeEnv(env, over []string) []string {
	out := append([]string{}, env...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// imageSize is what a pull transfers, less the manifest.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("testimage: %w", err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}
