package realtime

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSmallBuffersKeepEarlyBytes sends a request and the first bytes of
// the upgraded stream in one write: the hijacked reader must return them
// before anything read from the socket, and the buffers must be small.
func TestSmallBuffersKeepEarlyBytes(t *testing.T) {
	for _, test := range []struct {
		name  string
		early string
	}{
		{"none", ""},
		{"short", "hello"},
		{"longer than the read buffer", string(make([]byte, 3*connReadBuffer))},
	} {
		t.Run(test.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := smallBuffers{w}.Hijack()
				if !assert.NoError(t, err) {
					return
				}
				defer conn.Close()
				assert.Equal(t, connWriteBuffer, brw.Writer.Size())
				assert.Equal(t, max(len(test.early), connReadBuffer), brw.Reader.Size())
				b := make([]byte, len(test.early)+5)
				_, err = io.ReadFull(brw.Reader, b)
				assert.NoError(t, err)
				got <- string(b)
			}))
			defer srv.Close()

			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: tone\r\n\r\n"+test.early)
			require.NoError(t, err)
			// The rest arrives later, from the socket itself.
			time.Sleep(20 * time.Millisecond)
			_, err = io.WriteString(c, "world")
			require.NoError(t, err)
			select {
			case s := <-got:
				assert.Equal(t, test.early+"world", s)
			case <-time.After(5 * time.Second):
				t.Fatal("the handler read nothing")
			}
		})
	}
}
