package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// filters reads Docker's filters= query parameter: a JSON object of
// keys to {"value": true} (or, from old clients, to ["value"]). Shoal's
// lists take Docker's keys, so they pass through as they are, sorted.
func filters(r *http.Request) ([]*shoalv1.Filter, error) {
	raw := r.URL.Query().Get("filters")
	if raw == "" {
		return nil, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &sets); err != nil {
		var lists map[string][]string
		if err2 := json.Unmarshal([]byte(raw), &lists); err2 != nil {
			return nil, fmt.Errorf("invalid filters %q: want a JSON object such as {\"name\":{\"web\":true}}: %w", raw, errdefs.ErrInvalid)
		}
		sets = map[string]map[string]bool{}
		for k, vs := range lists {
			sets[k] = map[string]bool{}
			for _, v := range vs {
				sets[k][v] = true
			}
		}
	}
	keys := make([]string, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*shoalv1.Filter
	for _, k := range keys {
		f := &shoalv1.Filter{Key: k}
		for v, on := range sets[k] {
			if on {
				f.Values = append(f.Values, v)
			}
		}
		sort.Strings(f.Values)
		out = append(out, f)
	}
	return out, nil
}

// take removes key from fs and returns its values.
func take(fs []*shoalv1.Filter, key string) ([]*shoalv1.Filter, []string) {
	var rest []*shoalv1.Filter
	var values []string
	for _, f := range fs {
		if f.GetKey() == key {
			values = append(values, f.GetValues()...)
		} else {
			rest = append(rest, f)
		}
	}
	return rest, values
}
