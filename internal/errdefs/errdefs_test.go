package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestCategory(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"nil", nil, nil},
		{"plain", errors.New("boom"), nil},
		{"plain error with a category's text", errors.New("not found"), nil},
		{"bare", ErrConflict, ErrConflict},
		{"wrapped", fmt.Errorf("service %q: %w", "web", ErrNotFound), ErrNotFound},
		{"wrapped twice", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", ErrUnavailable)), ErrUnavailable},
		{"joined", errors.Join(errors.New("unrelated"), fmt.Errorf("x: %w", ErrFailedPrecond)), ErrFailedPrecond},
		{"two categories: the first listed wins", errors.Join(fmt.Errorf("%w", ErrConflict), fmt.Errorf("%w", ErrInvalid)), ErrInvalid},
		{"category in front", fmt.Errorf("%w: node abc is gone", ErrNotFound), ErrNotFound},
	} {
		if got := Category(tc.err); got != tc.want {
			t.Errorf("%s: Category(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestIs(t *testing.T) {
	all := []error{ErrInvalid, ErrNotFound, ErrAlreadyExists, ErrConflict, ErrUnavailable, ErrPermissionDenied, ErrUnauthenticated, ErrFailedPrecond}
	for _, cat := range all {
		err := fmt.Errorf("service %q: %w", "web", cat)
		for _, other := range all {
			if got := Is(err, other); got != (other == cat) {
				t.Errorf("Is(%q, %v) = %v; want %v", err, other, got, other == cat)
			}
		}
		if Is(errors.New(cat.Error()), cat) {
			t.Errorf("Is(errors.New(%q), %v) = true; a category is matched by identity, not by text", cat.Error(), cat)
		}
	}
	if Is(nil, ErrNotFound) {
		t.Error("Is(nil, ErrNotFound) = true")
	}
}
