package realtime

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an upgraded connection. coder/websocket keeps the bufio
// reader and writer it gets from the hijack for the connection's life, and
// net/http's are 4 KB each: 8 KB held by every idle connection. Frames
// from browsers are small (cursors, edits), and a message larger than the
// write buffer costs one more write call, not a copy, so smaller buffers
// trade little throughput for a third of an idle connection's memory.
const (
	connReadBuffer  = 512
	connWriteBuffer = 2 << 10
)

// smallBuffers wraps the ResponseWriter of an upgrade request so that
// hijacking it hands out connReadBuffer and connWriteBuffer sized buffers
// instead of the server's.
type smallBuffers struct {
	http.ResponseWriter
}

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hijacks the underlying connection. Bytes the server had already
// read past the request (a client may send its first frame right behind
// the upgrade) are read first.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, connReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// The bytes go into the new reader's buffer, where the caller
		// looks for them (coder/websocket resets the reader's source).
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, connReadBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connWriteBuffer)), nil
}
