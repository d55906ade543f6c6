package yaegitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// BenchmarkHTTPWasmAlternative measures the alternative Traefik offers to Yaegi, a plugin compiled to WebAssembly
// (http-wasm, run by wazero v1.8.0 in Traefik 3.6.12): testdata/wasmguest, built for wasip1 and run under wazero,
// and the same program run natively. It reports the µs of an ES256 check and of a cached token's lookup and header
// writes in each (docs/plugin.md, Performance). The http-wasm host calls that read and write each header would come
// on top of the wasm figure.
//
//	(cd plugin/yaegitest && go test -run XXX -bench HTTPWasmAlternative -benchtime 1x ./...)
func BenchmarkHTTPWasmAlternative(b *testing.B) {
	dir := b.TempDir()
	wasm, native := filepath.Join(dir, "guest.wasm"), filepath.Join(dir, "guest")
	build := func(out string, env ...string) {
		cmd := exec.Command("go", "build", "-o", out, "./testdata/wasmguest")
		cmd.Env = append(os.Environ(), env...)
		outb, err := cmd.CombinedOutput()
		require.NoError(b, err, string(outb))
	}
	build(wasm, "GOOS=wasip1", "GOARCH=wasm")
	build(native)
	for i := 0; i < b.N; i++ {
		out, err := exec.Command(native).Output()
		require.NoError(b, err)
		var es256, cached float64
		_, err = fmt.Sscan(string(out), &es256, &cached)
		require.NoError(b, err)
		b.ReportMetric(es256, "native-es256-µs")
		b.ReportMetric(cached, "native-cached-µs")

		es256, cached = runWasm(b, wasm)
		b.ReportMetric(es256, "wasm-es256-µs")
		b.ReportMetric(cached, "wasm-cached-µs")
	}
}

// runWasm runs the guest under wazero with a real clock and randomness, and reads what it prints.
func runWasm(b *testing.B, path string) (es256, cached float64) {
	ctx := context.Background()
	code, err := os.ReadFile(path)
	require.NoError(b, err)
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var out bytes.Buffer
	cfg := wazero.NewModuleConfig().WithStdout(&out).WithStderr(&out).WithSysNanotime().WithSysWalltime().
		WithRandSource(rand.Reader).WithArgs("guest")
	_, err = r.InstantiateWithConfig(ctx, code, cfg)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	require.NoError(b, err, out.String())
	_, err = fmt.Sscan(out.String(), &es256, &cached)
	require.NoError(b, err, out.String())
	return es256, cached
}
