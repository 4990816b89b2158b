package devdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// A root user's checkout often sits in a folder the postgres account cannot
// enter (/root is 0700). Opening that folder up would widen the user's home
// behind their back, so instead the cluster's files go to a directory of the
// postgres account's own home, and <data dir>/pg becomes a symlink to it:
// root follows the symlink, postgres is only ever given the real path. The
// directory's name is derived from the data dir, so the same checkout always
// lands in the same place; the symlink is what finds it again (a checkout
// moved elsewhere keeps its cluster), and Destroy (`dev db stop --delete`)
// removes both.

// relocationBase returns the directory that holds relocated clusters; a
// variable so tests can use a directory of their own.
var relocationBase = func(o clusterOwner) (string, error) {
	if o.home == "" || !filepath.IsAbs(o.home) || o.home == "/" {
		return "", fmt.Errorf("the %s user has no usable home directory (%q) to keep the cluster in", o.name, o.home)
	}
	return filepath.Join(o.home, "dashtam"), nil
}

// relocatedNote is a file in a relocated cluster's directory naming the data
// dir it belongs to, for an operator who finds the directory and wonders.
const relocatedNote = "DATA_DIR"

// place settles where l's cluster lives and returns its layout: where it
// already is, in <data dir>/pg when the cluster's account can reach that,
// and otherwise in a directory of that account's home (relocate).
func place(ctx context.Context, l layout, o clusterOwner, out io.Writer) (layout, error) {
	fi, err := os.Lstat(l.link)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		err := o.checkLink(l)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return l, err
		}
		// The files are gone (someone deleted them): start over.
		if err := os.Remove(l.link); err != nil {
			return l, fmt.Errorf("remove dangling %s: %w", l.link, err)
		}
	case err == nil:
		return l, o.ensureTraversable(l.dataDir)
	case !errors.Is(err, fs.ErrNotExist):
		return l, fmt.Errorf("look at %s: %w", l.link, err)
	}
	if !o.switched {
		return l.at(l.link), nil
	}
	dir, mode, ok := o.blockedParent(l.dataDir)
	if ok {
		return l.at(l.link), o.ensureTraversable(l.dataDir)
	}
	fmt.Fprintf(out, "the %s user cannot enter %s (mode %#o), a parent of data dir %s; ", o.name, dir, mode, l.dataDir)
	return relocate(ctx, l, o, out)
}

// relocate creates the cluster's directory under relocationBase and points
// <data dir>/pg at it. A directory already there belonged to a data dir of
// the same path that was deleted without `dev db stop --delete`: it is
// stopped and removed, so that deleting the data dir still starts over.
func relocate(ctx context.Context, l layout, o clusterOwner, out io.Writer) (layout, error) {
	base, err := relocationBase(o)
	if err != nil {
		return l, err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return l, fmt.Errorf("create %s: %w", base, err)
	}
	if err := o.checkRelocated(base); err != nil {
		return l, err
	}
	if dir, mode, ok := o.blockedParent(filepath.Join(base, "x")); !ok {
		return l, fmt.Errorf("the %s user cannot enter %s (mode %#o) either, where the cluster of data dir %s would go", o.name, dir, mode, l.dataDir)
	}
	sum := sha256.Sum256([]byte(l.dataDir))
	root := filepath.Join(base, hex.EncodeToString(sum[:8]))
	fmt.Fprintf(out, "keeping the cluster's files in %s instead (%s points there)\n", root, l.link)
	moved := l.at(root)
	if _, err := os.Lstat(root); err == nil {
		if err := o.checkRelocated(root); err != nil {
			return l, err
		}
		if err := stopAt(ctx, moved, o); err != nil {
			return l, fmt.Errorf("stop the leftover cluster in %s: %w", root, err)
		}
		if err := os.RemoveAll(root); err != nil {
			return l, fmt.Errorf("remove the leftover cluster in %s: %w", root, err)
		}
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		return l, fmt.Errorf("create %s: %w", root, err)
	}
	if err := os.WriteFile(filepath.Join(root, relocatedNote), []byte(l.dataDir+"\n"), 0o644); err != nil {
		return l, fmt.Errorf("write %s: %w", filepath.Join(root, relocatedNote), err)
	}
	if err := o.chown(root); err != nil {
		return l, err
	}
	if err := os.Symlink(root, l.link); err != nil {
		return l, fmt.Errorf("point %s at %s: %w", l.link, root, err)
	}
	return moved, nil
}

// checkLink refuses a <data dir>/pg symlink that relocate did not make: one
// pointing anywhere but a directory of relocationBase (a symlink shipped in
// an archive, say, pointing at /etc) would have root hand that place to the
// postgres account, or delete it. An error wrapping fs.ErrNotExist means
// the link is right but its directory is gone.
func (o clusterOwner) checkLink(l layout) error {
	refuse := fmt.Errorf("%s points to %s, which is not a cluster directory dashtam made: remove the symlink", l.link, l.root)
	if !o.switched {
		return refuse
	}
	base, err := relocationBase(o)
	if err != nil {
		return err
	}
	if filepath.Dir(l.root) != base || filepath.Base(l.root) == ".." {
		return refuse
	}
	if err := o.checkRelocated(base); err != nil {
		return err
	}
	return o.checkRelocated(l.root)
}

// checkRelocated refuses a directory that someone other than root or the
// cluster's account could have put there or could change: the cluster's
// data, and root's commands run in it, must not be in a stranger's hands.
func (o clusterOwner) checkRelocated(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (a symlink?): refusing to keep a cluster there", dir)
	case !ok || (st.Uid != 0 && int(st.Uid) != o.uid):
		return fmt.Errorf("%s belongs to neither root nor %s: refusing to keep a cluster there", dir, o.name)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others (mode %#o): refusing to keep a cluster there", dir, fi.Mode().Perm())
	}
	return nil
}
