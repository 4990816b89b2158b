package devdb

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrBinariesNotFound is returned when no PostgreSQL server installation can be
// found; its text is the one line a developer needs to fix the machine.
var ErrBinariesNotFound = errors.New(`PostgreSQL server binaries not found: install the Debian package "postgresql" (apt-get install postgresql)`)

// serverBinaries are the programs a bin directory must hold to be usable: a
// client-only install ships pg_config and psql but not these.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// debianBinGlob is where Debian and Ubuntu put each major version's server
// binaries, outside PATH.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// findBinDir locates the server binaries. An existing cluster is served by the
// binaries of its own major version when they are installed, because a newer
// postgres refuses an older data directory; otherwise pg_config's answer wins,
// then the highest Debian version, then PATH.
func findBinDir(dataDir string) (string, error) {
	if v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		dir := strings.Replace(debianBinGlob, "*", strings.TrimSpace(string(v)), 1)
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return searchBinDir("pg_config", debianBinGlob, "initdb")
}

// searchBinDir is findBinDir for a fresh cluster, with every place it looks as a
// parameter so tests can point it at places that do not exist.
func searchBinDir(pgConfig, glob, initdb string) (string, error) {
	if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServerBinaries(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(glob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath(initdb); err == nil {
		if dir := filepath.Dir(p); hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrBinariesNotFound
}

// versionOf extracts the major version from /usr/lib/postgresql/NN/bin so that
// 9.6 < 10 < 15 sort numerically rather than as strings.
func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func hasServerBinaries(dir string) bool {
	if dir == "" {
		return false
	}
	for _, name := range serverBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}
