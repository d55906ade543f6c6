package yaegitest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

// BenchmarkYaegiCosts measures what the constructs the plugin is made of cost under Yaegi, each in an interpreted
// loop (the loop itself is the first figure): the unit prices behind docs/plugin.md's account of the request path.
//
//	(cd plugin/yaegitest && go test -run XXX -bench YaegiCosts -benchmem ./...)
func BenchmarkYaegiCosts(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src", "costs")
	require.NoError(b, os.MkdirAll(src, 0o755))
	require.NoError(b, os.WriteFile(filepath.Join(src, "costs.go"), []byte(costsSource), 0o644))
	i := interp.New(interp.Options{GoPath: dir})
	require.NoError(b, i.Use(stdlib.Symbols))
	_, err := i.Eval(`import "costs"`)
	require.NoError(b, err)
	for _, name := range []string{"Loop", "Statement", "FieldWrite", "MapIndex", "FunctionCall", "MethodCall",
		"NativeCall", "NativeMethodCall", "SyncMapLoad", "LockUnlock", "HeaderWrites6", "Call40Expressions"} {
		b.Run(name, func(b *testing.B) {
			f, err := i.Eval("costs." + name)
			require.NoError(b, err)
			b.ReportAllocs()
			f.Call([]reflect.Value{reflect.ValueOf(b.N)})
		})
	}
}

const costsSource = `package costs

import (
	"strings"
	"sync"
)

type T struct {
	a, b int64
}

type headerOp struct {
	name string
	vals []string
}

var (
	mu   sync.Mutex
	sm   sync.Map
	m    = map[string]*T{"k": {}}
	t    = &T{}
	ops  = []headerOp{{"A", nil}, {"B", nil}, {"C", nil}, {"D", nil}, {"E", nil}, {"F", nil}}
	hdr  = map[string][]string{}
	sink int64
	str  = "Bearer header.payload.signature"
)

func fn(t *T)       {}
func (t *T) meth()  {}

// big has 40 expressions; it returns before any of them runs.
func big(i int64) int64 {
	if i >= 0 {
		return i
	}
	a := i + 1
	b := a * 2
	c := b - 3
	d := c / 4
	e := d % 5
	f := e + a
	g := f * b
	h := g - c
	j := h + d
	k := j * e
	l := k - f
	mm := l + g
	nn := mm * h
	oo := nn - j
	pp := oo + k
	qq := pp * l
	rr := qq - mm
	ss := rr + nn
	tt := ss * oo
	return tt + pp + qq + rr + ss
}

func Loop(n int) {
	for i := 0; i < n; i++ {
	}
}

func Statement(n int) {
	for i := 0; i < n; i++ {
		sink += 3
	}
}

func FieldWrite(n int) {
	for i := 0; i < n; i++ {
		t.a = t.b + 1
	}
}

func MapIndex(n int) {
	for i := 0; i < n; i++ {
		t = m["k"]
	}
}

func FunctionCall(n int) {
	for i := 0; i < n; i++ {
		fn(t)
	}
}

func MethodCall(n int) {
	for i := 0; i < n; i++ {
		t.meth()
	}
}

func NativeCall(n int) {
	for i := 0; i < n; i++ {
		strings.IndexByte(str, '.')
	}
}

func NativeMethodCall(n int) {
	r := strings.NewReplacer("a", "b")
	for i := 0; i < n; i++ {
		r.Replace("x")
	}
}

func SyncMapLoad(n int) {
	sm.Store("k", ops)
	for i := 0; i < n; i++ {
		sm.Load("k")
	}
}

func LockUnlock(n int) {
	for i := 0; i < n; i++ {
		mu.Lock()
		mu.Unlock()
	}
}

func HeaderWrites6(n int) {
	for i := 0; i < n; i++ {
		for _, op := range ops {
			hdr[op.name] = op.vals
		}
	}
}

func Call40Expressions(n int) {
	for i := 0; i < n; i++ {
		sink = big(int64(i))
	}
}
`
