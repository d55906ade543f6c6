package policy

import (
	"encoding/json"
	"fmt"

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
			var args map[string]any
			if json.Unmarshal(v.request.Arguments, &args) != nil || args == nil {
				args = map[string]any{}
			}
			v.arguments = celValue(args)
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

// celValue converts decoded JSON into CEL values once, so that the expressions of a decision read the arguments
// without converting them again at each access.
func celValue(v any) ref.Val {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[ref.Val]ref.Val, len(v))
		for k, e := range v {
			m[types.String(k)] = celValue(e)
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, m)
	case []any:
		l := make([]ref.Val, len(v))
		for i, e := range v {
			l[i] = celValue(e)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, l)
	case string:
		return types.String(v)
	case float64:
		return types.Double(v)
	case bool:
		return types.Bool(v)
	}
	return types.NullValue
}
