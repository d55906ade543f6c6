package policy

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"golang.org/x/time/rate"
)

// limit is one rate limit of the file: a token bucket per key (the user, the tool or resource, or both) over the
// requests it matches.
type limit struct {
	name      string
	spec      limitSpec // as written, its line left out: what a reload compares
	match     matcher
	perUser   bool
	perTarget bool
	every     rate.Limit
	burst     int
	buckets   *buckets
}

// buckets are a limit's token buckets by key. A reload hands them on to the same limit in the new file, so that
// editing a policy does not give every user a full bucket.
type buckets struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// keepBuckets has each limit of p that is written exactly as one of old carry on with old's buckets; a limit that
// is new or changed starts with full ones.
func (p *Policy) keepBuckets(old *Policy) {
	if old == nil {
		return
	}
	for _, l := range p.limits {
		for _, o := range old.limits {
			if reflect.DeepEqual(l.spec, o.spec) {
				l.buckets = o.buckets
				break
			}
		}
	}
}

// sweepAt is how many buckets a limit holds before it drops the full ones (a full bucket is the same as none).
const sweepAt = 10000

// Limited names the limit that refused a request and when a retry may pass.
type Limited struct {
	Rule       string
	RetryAfter time.Duration
}

// Take counts a request against every limit that matches it. When one has no token left, nothing is counted and
// Limited says which limit refused and for how long.
func (p *Policy) Take(c *Caller, r *Request) (Limited, bool) {
	if len(p.limits) == 0 {
		return Limited{}, true
	}
	now := time.Now()
	v := vars{caller: c, request: r}
	var taken []*rate.Reservation
	for _, l := range p.limits {
		ok, err := l.match.matches(c, r, &v)
		if err != nil {
			p.log.Warn("policy limit could not be evaluated: applied", "limit", l.name, "method", r.Method, "err", err)
			ok = true
		}
		if !ok {
			continue
		}
		res := l.bucket(c, r, now).ReserveN(now, 1)
		if delay := res.DelayFrom(now); !res.OK() || delay > 0 {
			res.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			return Limited{Rule: l.name, RetryAfter: max(delay, time.Second)}, false
		}
		taken = append(taken, res)
	}
	return Limited{}, true
}

func (l *limit) bucket(c *Caller, r *Request, now time.Time) *rate.Limiter {
	var key strings.Builder
	if l.perUser {
		key.WriteString(c.ID)
	}
	key.WriteByte(0)
	if l.perTarget {
		key.WriteString(r.Name)
		key.WriteString(r.URI)
	}
	l.buckets.mu.Lock()
	defer l.buckets.mu.Unlock()
	b := l.buckets.m[key.String()]
	if b == nil {
		if len(l.buckets.m) >= sweepAt {
			for k, old := range l.buckets.m {
				if old.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets.m, k)
				}
			}
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets.m[key.String()] = b
	}
	return b
}

func compileLimit(env *cel.Env, ls limitSpec) (*limit, error) {
	m, err := compileMatch(env, ls.matchSpec)
	if err != nil {
		return nil, err
	}
	n, per, err := parseRate(ls.Rate)
	if err != nil {
		return nil, err
	}
	spec := ls
	spec.line = 0
	l := &limit{name: ls.Name, spec: spec, match: m, every: rate.Limit(float64(n) / per.Seconds()), burst: ls.Burst,
		buckets: &buckets{m: map[string]*rate.Limiter{}}}
	if l.burst == 0 {
		l.burst = n
	}
	if l.burst < 1 {
		return nil, fmt.Errorf("burst %d: at least 1", ls.Burst)
	}
	if len(ls.Per) == 0 {
		ls.Per = []string{"user"}
	}
	for _, k := range ls.Per {
		switch k {
		case "user":
			l.perUser = true
		case "tool":
			l.perTarget = true
		default:
			return nil, fmt.Errorf("per %q: say per: [user], [tool] or [user, tool]", k)
		}
	}
	return l, nil
}

// parseRate reads "<n>/<s|m|h>", e.g. 60/m.
func parseRate(s string) (int, time.Duration, error) {
	count, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(count)
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if !ok || err != nil || n < 1 || n > math.MaxInt32 || per == 0 {
		return 0, 0, fmt.Errorf("rate %q: say how many per second, minute or hour, e.g. rate: 60/m", s)
	}
	return n, per, nil
}
