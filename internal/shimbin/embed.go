//go:build shimembed

package shimbin

import _ "embed"

//go:embed shoal-shim
var embedded []byte

func init() { Binary = embedded }
