package migrations

// UpFS and StatusFS expose the fs-parameterised internals to the external test
// package, which can import testdb (an internal test cannot: testdb imports
// this package).
var (
	UpFS     = up
	StatusFS = status
)
