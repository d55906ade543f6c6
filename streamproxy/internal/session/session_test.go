package session

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memChild is an MCP server in memory, over two pipes, as the MCP Go SDK's in-memory transport is: the test reads
// what the session sends it and writes what it answers, so the session's router runs without a process.
type memChild struct {
	t      *testing.T
	s      *Session
	got    chan string    // lines the session wrote to the child's stdin, in order; closed at its end
	stdout *io.PipeWriter // the child's output, which the session reads
}

func newMemChild(t *testing.T, cfg Config) *memChild {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &memChild{t: t, got: make(chan string, 64), stdout: outW}
	go func() {
		defer close(c.got)
		sc := bufio.NewScanner(inR)
		for sc.Scan() {
			c.got <- sc.Text()
		}
	}()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s, err := connect(cfg, child{stdin: inW, stdout: outR})
	require.NoError(t, err)
	c.s = s
	t.Cleanup(func() {
		_ = outW.Close() // the child ends, as a process that exits
		s.Close(time.Second)
	})
	return c
}

// write sends one line from the child to the session.
func (c *memChild) write(line string) {
	c.t.Helper()
	_, err := io.WriteString(c.stdout, line+"\n")
	require.NoError(c.t, err)
}

// read returns the next line the session wrote to the child.
func (c *memChild) read() string {
	c.t.Helper()
	select {
	case line, ok := <-c.got:
		require.True(c.t, ok, "the child's stdin ended")
		return line
	case <-time.After(10 * time.Second):
		c.t.Fatal("the session wrote nothing to the child")
		return ""
	}
}

// call sends a request through the session and returns its call, once the child has read the request.
func (c *memChild) call(id, progressToken, raw string) *Call {
	c.t.Helper()
	var pt json.RawMessage
	if progressToken != "" {
		pt = json.RawMessage(progressToken)
	}
	call, err := c.s.Call(json.RawMessage(id), pt, []byte(raw))
	require.NoError(c.t, err)
	assert.JSONEq(c.t, raw, c.read())
	return call
}

// next returns the call's next message.
func next(t *testing.T, c *Call) *Message {
	t.Helper()
	select {
	case m := <-c.Messages():
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message for the call")
		return nil
	}
}

// receive returns the next value from ch.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived")
		var zero T
		return zero
	}
}

func request(id string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"t"}}`
}

func response(id string) string { return `{"jsonrpc":"2.0","id":` + id + `,"result":{"n":` + id + `}}` }

// Responses go to the call that waits for their id, whatever the order the child answers in.
func TestRouteResponsesByID(t *testing.T) {
	c := newMemChild(t, Config{})
	one, two := c.call("1", "", request("1")), c.call(`"two"`, "", request(`"two"`))
	c.write(`{"jsonrpc":"2.0","id":"two","result":{"n":2}}`)
	c.write(response("1"))
	m := next(t, two)
	assert.True(t, m.IsResponse())
	assert.JSONEq(t, `{"n":2}`, string(m.Result))
	m = next(t, one)
	assert.JSONEq(t, `{"n":1}`, string(m.Result))
	assert.Nil(t, m.Error)
}

// A response forgets its call at once: what the child sends after it, about that request, goes to the next
// request in flight or the standalone stream, never to a call that was answered.
func TestRouteForgetsAnsweredCalls(t *testing.T) {
	c := newMemChild(t, Config{Backlog: 8})
	one := c.call("1", `"p1"`, request("1"))
	c.write(response("1"))
	require.True(t, next(t, one).IsResponse())
	c.write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p1","progress":1}}`)
	c.write(response("1")) // an answer nobody waits for: dropped
	two := c.call("2", "", request("2"))
	c.write(response("2"))
	assert.True(t, next(t, two).IsResponse(), "nothing meant for the answered call reached the next one")
	select {
	case m := <-one.Messages():
		t.Fatalf("an answered call got %s", m.Raw)
	default:
	}
	_, replay, err := c.s.OpenStream(0, true)
	require.NoError(t, err)
	require.Len(t, replay, 1, "the progress had no request: the standalone stream's backlog has it")
	assert.Contains(t, string(replay[0].Raw), `"p1"`)
}

// Progress goes to the call whose progress token it names, not to the oldest call in flight.
func TestRouteProgressByToken(t *testing.T) {
	c := newMemChild(t, Config{})
	oldest := c.call("1", "", request("1"))
	withToken := c.call("2", `"tok"`, request("2"))
	c.write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok","progress":1}}`)
	c.write(response("2"))
	c.write(response("1"))
	m := next(t, withToken)
	assert.Equal(t, "notifications/progress", m.Method)
	assert.True(t, next(t, withToken).IsResponse())
	assert.True(t, next(t, oldest).IsResponse(), "the oldest call got nothing but its response")
}

// A notification that names a subscription (2026-07-28's subscriptions/listen) goes to the listen request of
// that id, even while an older request is in flight.
func TestRouteBySubscriptionID(t *testing.T) {
	c := newMemChild(t, Config{})
	oldest := c.call("1", "", request("1"))
	listen := c.call(`"sp-2"`, "", `{"jsonrpc":"2.0","id":"sp-2","method":"subscriptions/listen","params":{}}`)
	c.write(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed",` +
		`"params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"sp-2"}}}`)
	c.write(response("1"))
	m := next(t, listen)
	assert.Equal(t, "notifications/tools/list_changed", m.Method)
	assert.True(t, next(t, oldest).IsResponse(), "the oldest call got nothing but its response")
}

// The child's own requests (sampling, elicitation, roots) and its log messages belong to the work in flight: the
// oldest call carries them. Other notifications go to the standalone stream, numbered.
func TestRouteToTheOldestCallOrTheStream(t *testing.T) {
	c := newMemChild(t, Config{Backlog: 8})
	events, replay, err := c.s.OpenStream(0, false)
	require.NoError(t, err)
	assert.Empty(t, replay)
	oldest, newer := c.call("1", "", request("1")), c.call("2", "", request("2"))
	c.write(`{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}`)
	c.write(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`)
	c.write(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b"}}`)
	c.write(response("1"))
	c.write(response("2"))

	m := next(t, oldest)
	assert.Equal(t, "sampling/createMessage", m.Method)
	assert.JSONEq(t, `"s1"`, string(m.ID))
	assert.Equal(t, "notifications/message", next(t, oldest).Method)
	assert.True(t, next(t, oldest).IsResponse())
	assert.True(t, next(t, newer).IsResponse(), "the newer call got nothing but its response")
	select {
	case e := <-events:
		assert.Equal(t, uint64(1), e.Seq)
		assert.Contains(t, string(e.Raw), "notifications/resources/updated")
	case <-time.After(10 * time.Second):
		t.Fatal("the standalone stream got nothing")
	}
}

// The standalone stream keeps its recent events for a client that comes back with Last-Event-ID: what it missed
// is replayed, up to the backlog's size, oldest dropped first.
func TestStandaloneStreamBacklog(t *testing.T) {
	c := newMemChild(t, Config{Backlog: 2})
	events, _, err := c.s.OpenStream(0, false)
	require.NoError(t, err)
	_, _, err = c.s.OpenStream(0, false)
	assert.ErrorIs(t, err, ErrStreamBusy, "one standalone stream at a time")
	notify := func(n string) {
		c.write(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://` + n + `"}}`)
	}
	notify("1")
	assert.Equal(t, uint64(1), receive(t, events).Seq)
	c.s.CloseStream(events)

	notify("2")
	notify("3")
	notify("4")
	// They have been routed once a call made after them gets its response: routing is in order.
	c.write(`{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}`)
	probe := c.call("9", "", request("9"))
	c.write(response("9"))
	require.True(t, next(t, probe).IsResponse())

	seqs := func(events []Event) []uint64 {
		var n []uint64
		for _, e := range events {
			n = append(n, e.Seq)
		}
		return n
	}
	events, replay, err := c.s.OpenStream(1, true)
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 5}, seqs(replay), "a backlog of 2 keeps the last two events")
	assert.Contains(t, string(replay[0].Raw), "a://4")
	assert.Contains(t, string(replay[1].Raw), "prompts/list_changed")
	c.s.CloseStream(events)

	_, replay, err = c.s.OpenStream(4, true)
	require.NoError(t, err)
	assert.Equal(t, []uint64{5}, seqs(replay), "only what came after Last-Event-ID")
}

// With an Unrouted hook (a worker on the stateless path, which has no standalone stream) a message that belongs
// to no call goes to the hook, and nothing is kept.
func TestRouteUnrouted(t *testing.T) {
	got := make(chan *Message, 4)
	c := newMemChild(t, Config{Backlog: 8, Unrouted: func(m *Message) { got <- m }})
	c.write(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
	c.write(`{"jsonrpc":"2.0","id":7,"method":"roots/list"}`)
	c.write(response("1")) // a response is never unrouted: dropped
	m := receive(t, got)
	assert.Equal(t, "notifications/tools/list_changed", m.Method)
	assert.Nil(t, m.ID)
	m = receive(t, got)
	assert.Equal(t, "roots/list", m.Method)
	assert.JSONEq(t, "7", string(m.ID))
	probe := c.call("9", "", request("9"))
	c.write(response("9"))
	require.True(t, next(t, probe).IsResponse())
	assert.Empty(t, got, "the response went nowhere")
	_, replay, err := c.s.OpenStream(0, true)
	require.NoError(t, err)
	assert.Empty(t, replay, "nothing went to the backlog")
}

// The Answer hook sees the child's requests first: what it answers goes back to the child and nowhere else, what
// it leaves goes its usual way.
func TestAnswerHook(t *testing.T) {
	c := newMemChild(t, Config{Answer: func(m *Message) []byte {
		if m.Method != "roots/list" {
			return nil
		}
		return []byte(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"roots":[]}}`)
	}})
	call := c.call("1", "", request("1"))
	c.write(`{"jsonrpc":"2.0","id":"r1","method":"roots/list"}`)
	assert.JSONEq(t, `{"jsonrpc":"2.0","id":"r1","result":{"roots":[]}}`, c.read(), "the hook's answer reached the child")
	c.write(`{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{}}`)
	c.write(response("1"))
	assert.Equal(t, "elicitation/create", next(t, call).Method, "the call saw only what the hook left")
	assert.True(t, next(t, call).IsResponse())
}

// A line that is not JSON is dropped, and the session reads on.
func TestRouteDropsWhatIsNotJSON(t *testing.T) {
	c := newMemChild(t, Config{})
	call := c.call("1", "", request("1"))
	c.write(`Server listening on stdio`)
	c.write(response("1"))
	assert.True(t, next(t, call).IsResponse())
}

// Every message reaches the child on one line, as the proxy wrote it compact: raw newlines between a body's
// tokens cannot split it into two messages.
func TestSendWritesOneLine(t *testing.T) {
	c := newMemChild(t, Config{})
	require.NoError(t, c.s.Send([]byte("{\"jsonrpc\":\"2.0\",\n\"method\":\"notifications/initialized\"\n}")))
	assert.Equal(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, c.read())
	assert.Error(t, c.s.Send([]byte(`{"jsonrpc":`)), "not JSON: nothing is written")
}

// A request id already in flight is refused; once answered, it may be used again.
func TestDuplicateID(t *testing.T) {
	c := newMemChild(t, Config{})
	call := c.call("1", "", request("1"))
	_, err := c.s.Call(json.RawMessage("1"), nil, []byte(request("1")))
	assert.ErrorIs(t, err, ErrDuplicateID)
	c.write(response("1"))
	require.True(t, next(t, call).IsResponse())
	c.call("1", "", request("1"))
}

// A child that ends fails every call in flight with a JSON-RPC error under the call's id, and the session with
// it; later calls get ErrClosed.
func TestChildEnds(t *testing.T) {
	c := newMemChild(t, Config{})
	call := c.call("1", "", request("1"))
	require.NoError(t, c.stdout.Close())
	m := next(t, call)
	require.True(t, m.IsResponse())
	var resp struct {
		Error struct{ Code int } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(m.Raw, &resp))
	assert.Equal(t, -32603, resp.Error.Code)
	<-c.s.Done()
	_, err := c.s.Call(json.RawMessage("2"), nil, []byte(request("2")))
	assert.ErrorIs(t, err, ErrClosed)
}

// Do runs a whole call: every message before the response to each, then the response; a caller that gives up
// gets its context's error.
func TestDo(t *testing.T) {
	c := newMemChild(t, Config{})
	go func() {
		assert.JSONEq(t, request("1"), c.read())
		c.write(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}`)
		c.write(response("1"))
	}()
	var before []string
	m, err := c.s.Do(context.Background(), json.RawMessage("1"), json.RawMessage(`"p"`), []byte(request("1")),
		func(m *Message) { before = append(before, m.Method) })
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":1}`, string(m.Result))
	assert.Equal(t, []string{"notifications/progress"}, before)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.s.Do(ctx, json.RawMessage("2"), nil, []byte(request("2")), func(*Message) {})
	assert.ErrorIs(t, err, context.Canceled)
	c.read()
	c.call("2", "", request("2")) // the given-up call was forgotten: its id is free
}

// Close closes the child's stdin; a child that then ends its output has ended, without a signal.
func TestCloseEndsTheInMemoryChild(t *testing.T) {
	c := newMemChild(t, Config{})
	go func() {
		for range c.got { // until the session closes the child's stdin
		}
		_ = c.stdout.Close()
	}()
	c.s.Close(time.Second)
	select {
	case <-c.s.Done():
	default:
		t.Fatal("the session is not over")
	}
}

// On a shared child, a server request or log message goes to the oldest call only while every call in flight is one
// owner's; with two owners' calls in flight it belongs to neither and is unrouted.
func TestSharedChildRoutesOnlyToALoneOwner(t *testing.T) {
	got := make(chan *Message, 4)
	c := newMemChild(t, Config{Shared: true, Unrouted: func(m *Message) { got <- m }})
	callFor := func(owner, id string) *Call {
		call, err := c.s.CallFor(owner, json.RawMessage(id), nil, []byte(request(id)))
		require.NoError(t, err)
		c.read()
		return call
	}
	first := callFor("alice", "1")
	second := callFor("alice", "2")
	c.write(`{"jsonrpc":"2.0","id":70,"method":"elicitation/create"}`)
	assert.Equal(t, "elicitation/create", next(t, first).Method, "one owner in flight: the oldest call carries it")

	bob := callFor("bob", "3")
	c.write(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}`)
	c.write(`{"jsonrpc":"2.0","id":71,"method":"sampling/createMessage"}`)
	assert.Equal(t, "notifications/message", receive(t, got).Method, "two owners in flight: nobody's")
	assert.Equal(t, "sampling/createMessage", receive(t, got).Method)
	for _, call := range []*Call{first, second, bob} {
		assert.Empty(t, call.Messages())
	}
}
