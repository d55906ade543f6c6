// Package jsonobj walks the members of a JSON object without decoding their values: the proxy reads the few members
// it routes and checks by (a message's id, method, params), and passes the rest on as the bytes they were.
package jsonobj

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrNotObject is the error of Each on a JSON value that is not an object.
var ErrNotObject = errors.New("not a JSON object")

type walker struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

// Decoders are reused: a jsontext.Decoder is a few hundred bytes of state, and Each runs several times a message.
var walkers = sync.Pool{New: func() any { return new(walker) }}

// Lenient as encoding/json is: what the proxy passes on is not its to judge, and the client's own messages were
// checked strictly before (see transport's reencode).
var lenient = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// Each calls fn with each member of the object obj, in order: its name, unquoted, and its value as written in obj (a
// slice of obj, whitespace excluded, capped so that an append copies it). It stops at fn's first error and returns
// it; a value that is not one JSON object is ErrNotObject or the decoder's error. fn must not keep name beyond the
// call (it may be scratch space); value may be kept.
func Each(obj []byte, fn func(name, value []byte) error) error {
	w := walkers.Get().(*walker)
	defer walkers.Put(w)
	w.buf = *bytes.NewBuffer(obj) // a decoder reads a bytes.Buffer in place, without copying obj
	w.dec.Reset(&w.buf, lenient...)
	defer func() { w.buf = bytes.Buffer{}; w.dec.Reset(&w.buf) }() // the pool must not keep obj alive
	if w.dec.PeekKind() != '{' {
		return ErrNotObject
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return err
	}
	var scratch [64]byte
	for w.dec.PeekKind() != '}' {
		quoted, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		name := quoted[1 : len(quoted)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			if name, err = jsontext.AppendUnquote(scratch[:0], quoted); err != nil {
				return err
			}
		}
		v, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		end := int(w.dec.InputOffset())
		if err := fn(name, obj[end-len(v):end:end]); err != nil { // capped: an append to it must not write into obj
			return err
		}
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return err
	}
	if _, err := w.dec.ReadToken(); err != io.EOF {
		return fmt.Errorf("after the object: %w", trailing(err))
	}
	return nil
}

func trailing(err error) error {
	if err == nil {
		return errors.New("more than one JSON value")
	}
	return err
}
