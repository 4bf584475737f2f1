package realtime

import "github.com/coder/websocket"

// CloseCode is a WebSocket close code. Codes 4000-4499 mean "reconnect, with
// backoff"; codes 4500-4999 mean "do not reconnect" until what caused them
// is fixed.
type CloseCode = websocket.StatusCode

// Close codes; docs/protocol.md says what a client should do after each.
const (
	CloseShutdown           CloseCode = 4001 // the node is shutting down: reconnect (to another node)
	CloseSlowConsumer       CloseCode = 4002 // the client fell too far behind: reconnect and recover
	CloseTokenExpired       CloseCode = 4003 // access token expired: refresh it, then reconnect
	CloseNoPong             CloseCode = 4004 // no frame within ping interval plus timeout
	CloseTooManyConnections CloseCode = 4006 // this user has too many connections on the node
	CloseProtocolError      CloseCode = 4500 // malformed message, or a frame out of order
	CloseUnauthenticated    CloseCode = 4501 // the connect token is missing or invalid
	CloseForbidden          CloseCode = 4502 // a refreshed token names another user
	CloseConnectTimeout     CloseCode = 4503 // no connect frame in time
)

// Reconnect reports whether a client closed with code should reconnect.
func Reconnect(code CloseCode) bool { return code < 4500 }
