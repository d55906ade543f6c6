package embedded

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// journalVersion is written on every line; a line of another version is refused rather than misread.
const journalVersion = 1

// op is one change to the state: put Val under (Kind, ID), or delete it.
type op struct {
	Kind string `json:"k"`
	ID   string `json:"id"`
	Del  bool   `json:"del,omitempty"`
	Val  any    `json:"v,omitempty"`
}

// line is one journal line: the ops of one mutation, applied together or not at all.
type line struct {
	V   int  `json:"v"`
	Ops []op `json:"ops"`
}

type rawOp struct {
	Kind string          `json:"k"`
	ID   string          `json:"id"`
	Del  bool            `json:"del,omitempty"`
	Val  json.RawMessage `json:"v,omitempty"`
}

type rawLine struct {
	V   int     `json:"v"`
	Ops []rawOp `json:"ops"`
}

// decodeLine parses one journal line into ops whose values have their real types.
func decodeLine(b []byte) ([]op, error) {
	var rl rawLine
	if err := json.Unmarshal(b, &rl); err != nil {
		return nil, err
	}
	if rl.V != journalVersion {
		return nil, fmt.Errorf("journal version %d, this build reads version %d", rl.V, journalVersion)
	}
	ops := make([]op, 0, len(rl.Ops))
	for _, r := range rl.Ops {
		v, err := newRecord(r.Kind)
		if err != nil {
			return nil, err
		}
		if !r.Del {
			if len(r.Val) == 0 {
				return nil, fmt.Errorf("%s %q: put without a value", r.Kind, r.ID)
			}
			if err := json.Unmarshal(r.Val, v); err != nil {
				return nil, fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
			}
		}
		ops = append(ops, op{Kind: r.Kind, ID: r.ID, Del: r.Del, Val: v})
	}
	return ops, nil
}

func encodeLine(ops []op) ([]byte, error) {
	b, err := json.Marshal(line{V: journalVersion, Ops: ops})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// replay reads the journal at path and hands every line's ops to apply. A last line that does not parse is what a
// crash in the middle of a write leaves behind: it is skipped with a warning (the caller logs it). A bad line
// followed by good ones means the file was damaged otherwise, and is an error naming the line. whole is the length
// of the journal without that torn line: where the next line may be appended.
func replay(path string, apply func([]op)) (tornTail string, whole int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var (
		n       int
		read    int64 // bytes read so far
		pending error // parse error of the previous non-empty line
		pendAt  int
	)
	for {
		b, rerr := r.ReadBytes('\n')
		read += int64(len(b))
		if len(bytes.TrimSpace(b)) > 0 {
			n++
			if pending != nil {
				return "", 0, fmt.Errorf("%s: line %d is corrupt: %w", path, pendAt, pending)
			}
			ops, perr := decodeLine(b)
			if perr != nil {
				pending, pendAt = perr, n
			} else {
				apply(ops)
				whole = read
			}
		} else if len(b) > 0 {
			n++
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", 0, rerr
		}
	}
	if pending != nil {
		return fmt.Sprintf("line %d: %v", pendAt, pending), whole, nil
	}
	return "", read, nil
}

// writeFileAtomic writes the file next to path and renames it into place, so a crash leaves the old or the new
// file, never half of one.
func writeFileAtomic(path string, write func(w io.Writer) error) (int64, error) {
	tmp, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: tmp}
	bw := bufio.NewWriterSize(cw, 1<<16)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return 0, err
	}
	// Make the rename itself durable.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
