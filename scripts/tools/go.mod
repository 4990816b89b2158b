// Module tools pins the developer tools that `make lint` runs. It is a module of
// its own because staticcheck's dependency golang.org/x/exp/typeparams clashes
// with the golang.org/x/exp version goose requires in the main module (the Go
// proxy refuses that version), so a `tool` line in the main go.mod cannot build.
module github.com/dashtam/dashtam/scripts/tools

go 1.26.8

tool honnef.co/go/tools/cmd/staticcheck

require (
	github.com/BurntSushi/toml v1.4.1-0.20240526193622-a339e1f7089c // indirect
	golang.org/x/exp/typeparams v0.0.0-20231108232855-2478ac86f678 // indirect
	golang.org/x/mod v0.31.0 // indirect
	golang.org/x/sync v0.19.0 // indirect
	golang.org/x/tools v0.40.1-0.20260108161641-ca281cf95054 // indirect
	honnef.co/go/tools v0.7.0 // indirect
)
