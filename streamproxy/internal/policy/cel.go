package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// The variables a rule's `when` expression may use, typed so that a misspelt name or a wrong type stops the load.
var celVariables = []cel.EnvOption{
	cel.Variable("caller.id", cel.StringType),
	cel.Variable("caller.login", cel.StringType),
	cel.Variable("caller.email", cel.StringType),
	cel.Variable("caller.client_id", cel.StringType),
	cel.Variable("caller.scopes", cel.ListType(cel.StringType)),
	cel.Variable("caller.groups", cel.ListType(cel.StringType)),
	cel.Variable("request.method", cel.StringType),
	cel.Variable("request.name", cel.StringType),
	cel.Variable("request.uri", cel.StringType),
	cel.Variable("request.arguments", cel.MapType(cel.StringType, cel.DynType)),
}

func newCELEnv() (*cel.Env, error) { return cel.NewEnv(celVariables...) }

// compileWhen type-checks an expression, which must be a bool, and compiles it once.
func compileWhen(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression is a %s, not a bool", ast.OutputType())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

// vars resolves the variables of one evaluation without building a map; arguments are decoded on first use only.
type vars struct {
	caller    *Caller
	request   *Request
	arguments ref.Val // decoded on first use, once for all the expressions of one decision
}

var _ interpreter.Activation = (*vars)(nil)

func (v *vars) ResolveName(name string) (any, bool) {
	switch name {
	case "caller.id":
		return v.caller.ID, true
	case "caller.login":
		return v.caller.Login, true
	case "caller.email":
		return v.caller.Email, true
	case "caller.client_id":
		return v.caller.ClientID, true
	case "caller.scopes":
		return orEmpty(v.caller.Scopes), true
	case "caller.groups":
		return orEmpty(v.caller.Groups), true
	case "request.method":
		return v.request.Method, true
	case "request.name":
		return v.request.Name, true
	case "request.uri":
		return v.request.URI, true
	case "request.arguments":
		if v.arguments == nil {
			v.arguments = decodeArguments(v.request.Arguments)
		}
		return v.arguments, true
	}
	return nil, false
}

func (v *vars) Parent() interpreter.Activation { return nil }

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// decodeArguments reads a call's arguments straight into CEL values, once for all the expressions of a decision;
// anything but an object (or nothing) is no arguments.
func decodeArguments(raw json.RawMessage) ref.Val {
	if len(raw) > 0 {
		d := decoders.Get().(*argumentDecoder)
		d.in.Reset(raw)
		d.dec.Reset(&d.in)
		v, err := readValue(&d.dec)
		decoders.Put(d)
		if err == nil && v.Type() == types.MapType {
			return v
		}
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{})
}

// argumentDecoder is a decoder kept for the next decision: a decision allocates little, so that the collector
// seldom runs while decisions wait.
type argumentDecoder struct {
	in  bytes.Reader
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(argumentDecoder) }}

// readValue reads one JSON value as a CEL value: objects as maps, arrays as lists, numbers as doubles.
func readValue(dec *jsontext.Decoder) (ref.Val, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '{':
		m := map[ref.Val]ref.Val{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			if m[types.String(name.String())], err = readValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.ReadToken()
		return types.NewRefValMap(types.DefaultTypeAdapter, m), err
	case '[':
		var l []ref.Val
		for dec.PeekKind() != ']' {
			e, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		_, err := dec.ReadToken()
		return types.NewRefValList(types.DefaultTypeAdapter, l), err
	case '"':
		return types.String(tok.String()), nil
	case '0':
		f, err := tok.Float()
		return types.Double(f), err
	case 't', 'f':
		return types.Bool(tok.Bool()), nil
	}
	return types.NullValue, nil
}
