package jsonobj

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func members(t *testing.T, obj string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := Each([]byte(obj), func(name, value []byte) error {
		got[string(name)] = string(value)
		return nil
	}); err != nil {
		t.Fatalf("Each(%s): %v", obj, err)
	}
	return got
}

func TestEachPassesValuesAsWritten(t *testing.T) {
	obj := ` { "id" : 7, "method":"tools/call", "params": {"name": "echo", "arguments": {"a": [1, 2]}},
		"na\u006de": "x\ny", "r": null } `
	got := members(t, obj)
	want := map[string]string{"id": "7", "method": `"tools/call"`, "params": `{"name": "echo", "arguments": {"a": [1, 2]}}`,
		"name": `"x\ny"`, "r": "null"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEachAgreesWithEncodingJSON(t *testing.T) {
	obj := `{"jsonrpc":"2.0","id":"a\"b","result":{"content":[{"type":"text","text":"\u00e9"}],"isError":false}}`
	var std map[string]json.RawMessage
	if err := json.Unmarshal([]byte(obj), &std); err != nil {
		t.Fatal(err)
	}
	got := members(t, obj)
	for k, v := range std {
		if got[k] != string(v) {
			t.Errorf("%s: got %s, encoding/json %s", k, got[k], v)
		}
	}
	if len(got) != len(std) {
		t.Errorf("got %d members, encoding/json %d", len(got), len(std))
	}
}

func TestEachRefusesWhatIsNotOneObject(t *testing.T) {
	for _, in := range []string{``, `[]`, `"x"`, `{"a":1`, `{"a":1} {}`, `{"a":}`, `{"a" 1}`} {
		if err := Each([]byte(in), func(_, _ []byte) error { return nil }); err == nil {
			t.Errorf("Each(%q): no error", in)
		}
	}
}

func TestEachStopsAtTheFirstError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Each([]byte(`{"a":1,"b":2,"c":3}`), func(_, _ []byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("err %v after %d members, want stop after 2", err, n)
	}
}

func BenchmarkEach(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = Each(msg, func(_, _ []byte) error { return nil })
	}
}
