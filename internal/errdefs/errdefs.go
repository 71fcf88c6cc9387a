// Package errdefs holds the error categories shared by every Shoal package.
// It knows nothing of any wire protocol: internal/errgrpc maps the
// categories to gRPC status codes at the servers' and clients' edges.
//
// Packages wrap a category with context (fmt.Errorf("service %q: %w", name,
// errdefs.ErrNotFound)) and test for one with Is. Messages are lower case
// and say what was wrong and what to do.
package errdefs

import "errors"

// The categories.
var (
	ErrInvalid          = errors.New("invalid argument")
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrUnavailable      = errors.New("unavailable")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrFailedPrecond    = errors.New("failed precondition")
)

// categories is every category, in the order Category tries them.
var categories = []error{
	ErrInvalid,
	ErrNotFound,
	ErrAlreadyExists,
	ErrConflict,
	ErrUnavailable,
	ErrPermissionDenied,
	ErrUnauthenticated,
	ErrFailedPrecond,
}

// Is reports whether err is of category cat. An error that came back over
// gRPC has its category once internal/errgrpc.FromGRPC has converted it.
func Is(err, cat error) bool { return errors.Is(err, cat) }

// Category returns the category err wraps, or nil when it has none. When
// err wraps several (errors.Join), the first of the list above wins.
func Category(err error) error {
	for _, c := range categories {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}
