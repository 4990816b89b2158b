package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CheckpointDir is the write-once copy of the checkpoints outside the
// database: one file per checkpoint, created with O_EXCL and never
// rewritten, so that a superuser who rewrites or empties the database's
// checkpoints is caught by comparing with it. Ship it somewhere the
// database's operators cannot write (another host, object storage with
// retention) for the copy to count.
type CheckpointDir struct {
	path string
}

// checkpointFilePrefix and checkpointFileSuffix frame a checkpoint file's
// name; the sequence number between them is zero-padded so names sort.
const (
	checkpointFilePrefix = "checkpoint-"
	checkpointFileSuffix = ".json"
)

// OpenCheckpointDir returns the directory at path, creating it (0700) if needed.
func OpenCheckpointDir(path string) (*CheckpointDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	return &CheckpointDir{path: path}, nil
}

// ReadCheckpointDir returns the directory at path for reading; it must exist.
func ReadCheckpointDir(path string) (*CheckpointDir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("checkpoint directory %s is not a directory", path)
	}
	return &CheckpointDir{path: path}, nil
}

// Path is the directory's path.
func (d *CheckpointDir) Path() string { return d.path }

func (d *CheckpointDir) file(seq int64) string {
	return filepath.Join(d.path, fmt.Sprintf("%s%020d%s", checkpointFilePrefix, seq, checkpointFileSuffix))
}

// ErrCheckpointFileDiffers means a checkpoint's file exists with other content.
var ErrCheckpointFileDiffers = errors.New("checkpoint file differs from the checkpoint")

// Write stores c's file unless it exists. An existing file is never
// touched: when its content differs, Write returns ErrCheckpointFileDiffers,
// which is evidence that one of the two copies was rewritten.
func (d *CheckpointDir) Write(c Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	name := d.file(c.Seq)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrExist) {
		old, rerr := os.ReadFile(name)
		if rerr != nil {
			return fmt.Errorf("read %s: %w", name, rerr)
		}
		if !bytes.Equal(old, line) {
			return fmt.Errorf("%s: %w", name, ErrCheckpointFileDiffers)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A partial file would never be rewritten: remove it so the next
		// sync writes it whole.
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if dir, err := os.Open(d.path); err == nil {
		_ = dir.Sync() // the new name survives a crash
		dir.Close()
	}
	return nil
}

// Seqs lists the sequence numbers of the directory's checkpoint files, in
// order. Files that are not checkpoint files are ignored.
func (d *CheckpointDir) Seqs() ([]int64, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint directory: %w", err)
	}
	var out []int64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, checkpointFilePrefix) || !strings.HasSuffix(name, checkpointFileSuffix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, checkpointFilePrefix), checkpointFileSuffix), 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// maxCheckpointFileBytes bounds a checkpoint file read: a real one is a
// few kilobytes (a proof has at most 64 hashes).
const maxCheckpointFileBytes = 64 << 10

// Read returns checkpoint seq from its file.
func (d *CheckpointDir) Read(seq int64) (Checkpoint, error) {
	name := d.file(seq)
	f, err := os.Open(name)
	if err != nil {
		return Checkpoint{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpointFileBytes+1))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxCheckpointFileBytes {
		return Checkpoint{}, fmt.Errorf("%s is larger than a checkpoint", name)
	}
	var c Checkpoint
	if err := json.Unmarshal(bytes.TrimSuffix(b, []byte("\n")), &c); err != nil {
		return Checkpoint{}, fmt.Errorf("%s: %w", name, err)
	}
	if c.Seq != seq {
		return Checkpoint{}, fmt.Errorf("%s holds checkpoint %d", name, c.Seq)
	}
	return c, nil
}

// SyncDir writes the file of every stored checkpoint the directory lacks,
// so a crash between a checkpoint's commit and its file, or a directory
// restored from an older copy, heals at the next checkpoint.
func (c *Checkpointer) SyncDir(ctx context.Context) error {
	if c.dir == nil {
		return nil
	}
	have, err := c.dir.Seqs()
	if err != nil {
		return err
	}
	present := make(map[int64]bool, len(have))
	for _, s := range have {
		present[s] = true
	}
	return c.store.Checkpoints(ctx, 1, 0, func(ck Checkpoint) error {
		if present[ck.Seq] {
			return nil
		}
		return c.dir.Write(ck)
	})
}
