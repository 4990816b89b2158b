package devdb

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// clusterOwner is the OS account the server runs as. initdb and postgres refuse
// to run as root, so a root caller hands the cluster to the "postgres" account
// that the Debian package creates; anyone else runs it as themselves.
type clusterOwner struct {
	name     string
	uid, gid int
	home     string // the account's home directory, when switched
	switched bool   // true when commands must drop from root to this account
}

func currentOwner() (clusterOwner, error) {
	if os.Geteuid() != 0 {
		return clusterOwner{name: "current user", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return clusterOwner{}, fmt.Errorf("running as root, but PostgreSQL refuses root and there is no \"postgres\" user to run the cluster as (install the Debian package \"postgresql\", or run as an ordinary user): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return clusterOwner{}, fmt.Errorf("parse uid of postgres: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return clusterOwner{}, fmt.Errorf("parse gid of postgres: %w", err)
	}
	return clusterOwner{name: "postgres", uid: uid, gid: gid, home: u.HomeDir, switched: true}, nil
}

// command builds an exec.Cmd that runs as the owner. Dropping privileges in the
// fork (rather than through runuser or su) needs no extra tool and no shell
// quoting. The working directory is one the owner can enter, because initdb
// and pg_ctl complain when they cannot read the current directory.
func (o clusterOwner) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if o.switched {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)},
		}
		cmd.Env = append(cmd.Env, "HOME="+dir, "USER="+o.name, "LOGNAME="+o.name)
	}
	return cmd
}

// chown hands path to the owner; a no-op when no account switch happens.
func (o clusterOwner) chown(path string) error {
	if !o.switched {
		return nil
	}
	if err := os.Chown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("hand %s to the %s user: %w", path, o.name, err)
	}
	return nil
}

// ensureTraversable makes sure the owner can reach dataDir. The data dir itself
// is ours, so a private mode (mktemp -d gives 0700) is opened to 0755; a parent
// we do not own is only diagnosed, because widening someone's home directory
// behind their back is not a dev tool's call (place moves the cluster's files
// elsewhere instead, when it still can).
func (o clusterOwner) ensureTraversable(dataDir string) error {
	if !o.switched {
		return nil
	}
	if dir, mode, ok := o.blockedParent(dataDir); !ok {
		return fmt.Errorf("the postgres user cannot enter %s (mode %#o), a parent of data dir %s: run `chmod o+x %s` or choose a data dir elsewhere (DASHTAM_DATA_DIR / --data-dir)", dir, mode, dataDir, dir)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o005 != 0o005 {
		if err := os.Chmod(dataDir, fi.Mode().Perm()|0o755); err != nil {
			return fmt.Errorf("open data dir %s to the postgres user: %w", dataDir, err)
		}
	}
	return nil
}

// blockedParent returns the first parent of path, from the nearest up, that
// the owner cannot search, with its mode; ok is true when there is none.
func (o clusterOwner) blockedParent(path string) (dir string, mode fs.FileMode, ok bool) {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if !o.canTraverse(dir) {
			if fi, err := os.Stat(dir); err == nil {
				mode = fi.Mode().Perm()
			}
			return dir, mode, false
		}
		if dir == filepath.Dir(dir) {
			return "", 0, true
		}
	}
}

// canTraverse reports whether the owner may search dir, from the permission
// bits that apply to it as owner, group member or other.
func (o clusterOwner) canTraverse(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil {
		return false
	}
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}
	switch {
	case int(st.Uid) == o.uid:
		return perm&0o100 != 0
	case int(st.Gid) == o.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
