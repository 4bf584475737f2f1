package realtime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestOutboundBudget: frames beyond the byte budget cut a client off, but
// one frame of more than half the budget (a large canvas snapshot) goes
// through on its own account, with the usual budget around it.
func TestOutboundBudget(t *testing.T) {
	n := NewNode(Config{OutboundQueueBytes: 4096}, benchAuth{}, NewMemoryBroker(10, time.Minute), nil, nil)
	frame := func(size int) []byte { return make([]byte, size) }
	fresh := func() *Client {
		c := newBenchClient(n)
		c.closeOnce.Do(func() {}) // no connection to close
		return c
	}
	closed := func(c *Client) bool {
		c.qmu.Lock()
		defer c.qmu.Unlock()
		return c.closed
	}

	c := fresh()
	c.enqueue(frame(3000)) // big
	for range 4 {
		c.enqueue(frame(1000)) // the ordinary budget is still there
	}
	assert.False(t, closed(c), "a big frame plus a full budget of small ones")
	c.enqueue(frame(200))
	assert.True(t, closed(c), "over the budget")

	c = fresh()
	c.enqueue(frame(3000))
	c.enqueue(frame(3000))
	assert.True(t, closed(c), "only one big frame at a time")

	c = fresh()
	c.enqueue(frame(3000))
	c.drainForBench()
	c.enqueue(frame(3000))
	assert.False(t, closed(c), "another big frame once the first is sent")
}
