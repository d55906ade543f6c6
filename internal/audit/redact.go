package audit

import "strings"

// Redacted replaces the value of an argument whose name says it is a secret.
const Redacted = "[redacted]"

// secretWords are the parts of an argument's name that mark its value a secret (matched without case).
var secretWords = []string{"token", "password", "passwd", "secret", "apikey", "api_key", "api-key", "authorization",
	"credential", "cookie", "private", "session"}

// Redact returns a copy of args with the value of every member, at any depth, whose name holds a secret word
// replaced by Redacted. Arguments are logged only for tools an operator opted in; this keeps the obvious secrets
// out even then.
func Redact(args map[string]any) map[string]any {
	if args == nil {
		return nil
	}
	out := make(map[string]any, len(args))
	for k, v := range args {
		if secretName(k) {
			out[k] = Redacted
			continue
		}
		out[k] = redactValue(v)
	}
	return out
}

func redactValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return Redact(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = redactValue(x)
		}
		return out
	}
	return v
}

func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
