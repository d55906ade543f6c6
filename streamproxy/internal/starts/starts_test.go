package starts

import (
	"context"
	"errors"
	"testing"
	"time"
)

// queued is a start waiting in line: its turn's release when it comes, or its error.
type queued struct {
	release chan func()
	err     chan error
}

// queue has a start wait in line, behind the ones in line before it.
func queue(t *testing.T, l *Limiter, ctx context.Context, p Priority) queued {
	t.Helper()
	_, before := counts(l)
	q := queued{release: make(chan func(), 1), err: make(chan error, 1)}
	go func() {
		release, err := l.Wait(ctx, p)
		if err != nil {
			q.err <- err
			return
		}
		q.release <- release
	}()
	waitFor(t, func() bool { _, waiting := counts(l); return waiting == before+1 }, "the start is in line")
	return q
}

// counts reports how many starts hold a turn, and how many wait for one.
func counts(l *Limiter) (running, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running, len(l.lines[ForUser]) + len(l.lines[Ahead])
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 10 s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// turn is the release of the start whose turn has come, or fails the test.
func (q queued) turn(t *testing.T) func() {
	t.Helper()
	select {
	case r := <-q.release:
		return r
	case err := <-q.err:
		t.Fatalf("the start got %v, not its turn", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the start's turn did not come")
	}
	return nil
}

// waiting reports that the start's turn has not come.
func (q queued) waiting() bool { return len(q.release) == 0 && len(q.err) == 0 }

func take(t *testing.T, l *Limiter) func() {
	t.Helper()
	release, err := l.Wait(context.Background(), ForUser)
	if err != nil {
		t.Fatal(err)
	}
	return release
}

// Beyond the limit starts wait, and take their turns in the order they came: users' first, then the pool's.
func TestTurnsInOrder(t *testing.T) {
	l := New(2, nil)
	first, second := take(t, l), take(t, l)
	ahead := queue(t, l, context.Background(), Ahead)
	a := queue(t, l, context.Background(), ForUser)
	b := queue(t, l, context.Background(), ForUser)
	if running, waiting := counts(l); running != 2 || waiting != 3 {
		t.Fatalf("%d starting and %d waiting, want 2 and 3", running, waiting)
	}

	first()
	first() // twice gives back one turn only
	releaseA := a.turn(t)
	if !b.waiting() || !ahead.waiting() {
		t.Fatal("one turn given back, more than one start went")
	}
	second()
	releaseB := b.turn(t)
	if !ahead.waiting() {
		t.Fatal("the pool's start went before a user's")
	}
	releaseA()
	ahead.turn(t)()
	releaseB()
	if running, waiting := counts(l); running != 0 || waiting != 0 {
		t.Fatalf("%d starting and %d waiting after every release", running, waiting)
	}
}

// A start whose caller gives up leaves the line with nothing taken, and its cause is the error.
func TestGivingUpLeavesTheLine(t *testing.T) {
	l := New(1, nil)
	release := take(t, l)
	gone := errors.New("the client went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	leaving := queue(t, l, ctx, ForUser)
	next := queue(t, l, context.Background(), ForUser)
	cancel(gone)
	select {
	case err := <-leaving.err:
		if !errors.Is(err, gone) {
			t.Fatalf("the start that gave up got %v, want its cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the start did not give up")
	}
	release()
	next.turn(t)()
	if running, waiting := counts(l); running != 0 || waiting != 0 {
		t.Fatalf("%d starting and %d waiting: the start that gave up kept something", running, waiting)
	}
}

// Closing turns away the starts in line and later ones.
func TestClose(t *testing.T) {
	l := New(1, nil)
	release := take(t, l)
	q := queue(t, l, context.Background(), ForUser)
	l.Close()
	select {
	case err := <-q.err:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the start in line was not turned away")
	}
	if _, err := l.Wait(context.Background(), ForUser); !errors.Is(err, ErrClosed) {
		t.Fatalf("a later start got %v, want ErrClosed", err)
	}
	release()
}

// Without a limit nothing waits; starts are still counted.
func TestNoLimit(t *testing.T) {
	l := New(0, nil)
	var releases []func()
	for range 50 {
		releases = append(releases, take(t, l))
	}
	if running, waiting := counts(l); running != 50 || waiting != 0 {
		t.Fatalf("%d starting and %d waiting, want 50 and 0", running, waiting)
	}
	for _, r := range releases {
		r()
	}
	var none *Limiter
	r, err := none.Wait(context.Background(), ForUser)
	if err != nil {
		t.Fatal(err)
	}
	r()
}
