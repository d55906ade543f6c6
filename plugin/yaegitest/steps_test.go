package yaegitest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
)

// BenchmarkFirstSeenSteps splits a first-seen token's path under Yaegi into its steps, each run in an interpreted
// loop the way the plugin runs it (docs/plugin.md, Performance): base64, JSON, the ES256 check, the verdict (header
// writes), the cache insertion, the full check (verify), and whole requests, first-seen and cached.
//
//	(cd plugin/yaegitest && go test -run XXX -bench FirstSeenSteps -benchmem ./...)
func BenchmarkFirstSeenSteps(b *testing.B) {
	loadYaegi(b)
	iss := plugintest.NewIssuer(b)
	iss.AddES256("es")
	_, err := yaegiInterp.Eval(stepsSource)
	require.NoError(b, err)
	setup, err := yaegiInterp.Eval("stepSetup")
	require.NoError(b, err)
	b.Cleanup(stopAll)
	warm := iss.Sign("es", iss.Claims(plugintest.Resource))
	out := setup.Call([]reflect.Value{reflect.ValueOf(iss.URL), reflect.ValueOf(plugintest.Resource), reflect.ValueOf("Bearer " + warm)})
	require.Empty(b, out[0].String())
	for _, step := range []string{"Base64", "JSON", "ES256", "Verdict", "CacheInsert", "Verify", "FirstSeenRequest", "CachedRequest"} {
		b.Run(step, func(b *testing.B) {
			toks := make([]string, b.N)
			for i := range toks {
				toks[i] = "Bearer " + iss.Sign("es", iss.Claims(plugintest.Resource))
			}
			f, err := yaegiInterp.Eval("step" + step)
			require.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			out := f.Call([]reflect.Value{reflect.ValueOf(toks)})
			b.StopTimer()
			require.Empty(b, out[0].String())
		})
	}
}

// stepsSource runs in the plugin's interpreter (package main, importing the plugin; Yaegi lets it use the
// plugin's unexported names).
var stepsSource = strings.ReplaceAll(`
import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"IMPORT"
)

var stepMW *plugin.Middleware

func stepSetup(issuer, resource, warm string) string {
	c := plugin.CreateConfig()
	c.Issuer, c.Resource, c.CacheMemory = issuer, resource, "1GiB"
	h, err := plugin.New(context.Background(), http.NotFoundHandler(), c, "steps")
	if err != nil {
		return err.Error()
	}
	stepMW = h.(*plugin.Middleware)
	for i := 0; i < 1000; i++ {
		if e, _ := plugin.admit(stepMW, warm); e != nil {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "the middleware never got its keys"
}

func stepBase64(toks []string) string {
	for _, t := range toks {
		p := strings.Split(t, ".")
		if _, err := plugin.strictB64.DecodeString(p[1]); err != nil {
			return err.Error()
		}
		if _, err := plugin.strictB64.DecodeString(p[2]); err != nil {
			return err.Error()
		}
	}
	return ""
}

func stepJSON(toks []string) string {
	cb, _ := plugin.strictB64.DecodeString(strings.Split(toks[0], ".")[1])
	for range toks {
		c := plugin.blankClaims
		if err := json.Unmarshal(cb, &c); err != nil {
			return err.Error()
		}
	}
	return ""
}

func stepES256(toks []string) string {
	p := strings.Split(toks[0], ".")
	sig, _ := plugin.strictB64.DecodeString(p[2])
	pub := stepMW.st.keys["es"].ec
	input := toks[0][7 : len(p[0])+1+len(p[1])]
	for range toks {
		d := sha256.Sum256([]byte(input))
		if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return "signature refused"
		}
	}
	return ""
}

func stepVerdict(toks []string) string {
	cb, _ := plugin.strictB64.DecodeString(strings.Split(toks[0], ".")[1])
	c := plugin.blankClaims
	json.Unmarshal(cb, &c)
	for range toks {
		plugin.allowed(stepMW, &c, "es")
	}
	return ""
}

func stepCacheInsert(toks []string) string {
	c, exp := stepMW.cache, time.Now().Unix()+3600
	for _, t := range toks {
		plugin.put(c, t, &plugin.cacheEntry{deadline: exp, jti: t[len(t)-20:]})
	}
	return ""
}

func stepVerify(toks []string) string {
	now := time.Now()
	for _, t := range toks {
		if _, err := plugin.verify(stepMW, t[7:], now); err != nil {
			return err.Error()
		}
	}
	return ""
}

func stepFirstSeenRequest(toks []string) string {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, stepMW.s.resource, nil)
	for _, t := range toks {
		r.Header = http.Header{"Authorization": {t}}
		stepMW.ServeHTTP(w, r)
	}
	return ""
}

func stepCachedRequest(toks []string) string {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, stepMW.s.resource, nil)
	for range toks {
		r.Header = http.Header{"Authorization": {toks[0]}}
		stepMW.ServeHTTP(w, r)
	}
	return ""
}
`, "IMPORT", importPath)
