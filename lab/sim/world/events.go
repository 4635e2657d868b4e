package world

import (
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// eventBus is one boot's runtime event stream, as machined's: events are buffered from boot on
// and every watcher first gets the requested tail, then new events. A reboot ends the bus (its
// watchers' streams drop) and the next boot starts a new, empty one.
type eventBus struct {
	mu       sync.Mutex
	events   []*machine.Event
	watchers map[chan *machine.Event]bool
	closed   bool
}

func newEventBus() *eventBus { return &eventBus{watchers: map[chan *machine.Event]bool{}} }

// publish sends an event. The type URL is "talos/runtime/<proto full name>", as Talos's NewEvent
// builds it (internal/app/machined/pkg/runtime/events.go:127-142, serialized at :145-158).
func (b *eventBus) publish(payload proto.Message, actorID string) {
	value, err := proto.Marshal(payload)
	if err != nil {
		return
	}
	ev := &machine.Event{
		Data:    &anypb.Any{TypeUrl: fmt.Sprintf("talos/runtime/%s", payload.ProtoReflect().Descriptor().FullName()), Value: value},
		Id:      uuid.NewString(),
		ActorId: actorID,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.events = append(b.events, ev)
	for w := range b.watchers {
		select {
		case w <- ev:
		default:
		}
	}
}

// watch returns the tail (tail < 0: every buffered event; 0: none; n: the last n) and a channel of
// new events, closed when the boot ends.
func (b *eventBus) watch(tail int) ([]*machine.Event, chan *machine.Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan *machine.Event, 1024)
	var past []*machine.Event
	switch {
	case tail < 0:
		past = append(past, b.events...)
	case tail > 0:
		past = append(past, b.events[max(0, len(b.events)-tail):]...)
	}
	if b.closed {
		close(ch)
		return past, ch, func() {}
	}
	b.watchers[ch] = true
	return past, ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.watchers[ch] {
			delete(b.watchers, ch)
			close(ch)
		}
	}
}

func (b *eventBus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for w := range b.watchers {
		close(w)
		delete(b.watchers, w)
	}
}
