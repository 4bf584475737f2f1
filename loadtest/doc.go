// Package loadtest is Tone's load generator for the realtime server: it
// opens many WebSocket connections with the Go protocol client (rtclient),
// drives one of a few scenarios against a running `tone serve`, and reports
// throughput, latency percentiles and errors. `tone loadtest` is its
// command line; docs/benchmarks.md records the numbers it measured.
//
// # Safety
//
// Load only ever goes to this machine: [Run] refuses a target URL whose
// host does not resolve to loopback addresses only (127.0.0.0/8, ::1), and
// every connection it dials is checked again once open, so neither a
// redirect nor a changed DNS answer can send load elsewhere. Every scenario
// runs for a bounded time (Config.Duration) and stops by itself; workers
// stop when their parent's pipe closes.
//
// # Setup
//
// The parent registers Config.Users accounts with random emails through
// the REST API, logs them in, makes the first the owner of a new workspace
// and project with the others as editors, and creates the canvases the
// scenario needs. The server must run with relaxed rate limits and a
// per-user connection limit that fits the test: [RelaxedServerFlags] and
// Config.ServerFlags give the flags, and Run prints them (and says so again
// when the server answers 429).
//
// # Scenarios
//
//   - canvas: Config.Editors editors over Config.Canvases canvases. Each
//     editor has its own connection, a random replica id in [2^32, 2^53)
//     and its own crdt.Doc; it subscribes to canvas:<id> with its version
//     vector and replica, creates one element, then sends Set updates at
//     Config.Rate per second. The end-to-end latency is the time from
//     sending an update to its arrival, as a msg frame, at each other
//     editor of the canvas: all editors of a canvas run in the same worker,
//     which keeps the send time of every (replica, seq). Acks (ok replies,
//     sent once the update is durable) are timed too.
//   - fanout: Config.Subscribers subscribers of one project channel and a
//     publisher (the project's owner) publishing Config.Rate messages per
//     second, each carrying its send time; the delivery latency is measured
//     at every subscriber. The publisher spreads its rate over enough
//     connections to stay under the server's command limit per connection.
//   - idle: Config.Conns authenticated connections that only answer pings.
//     After a settle period the parent reads the server's /metrics and
//     compares it with a reading taken before connecting: resident memory,
//     Go heap in use and goroutines per connection, and whether
//     tone_realtime_connections grew by exactly the connections held.
//
// # Workers
//
// Connections are spread over Config.Procs workers, so that no process
// holds more files than its limit allows (RaiseFileLimit raises the soft
// limit to the hard one). With a Spawner from [Exec] the workers are child
// processes (`tone loadtest worker`); [InProcess] runs them as goroutines.
// The parent sends each worker its plan (tokens and ids, never on a command
// line) as one JSON line on its standard input, then "start"; the worker
// answers with JSON lines on its standard output: ready once connected,
// progress every second, and its result (counters and histograms), which
// the parent merges.
//
// # Output
//
// A progress line every second on Config.Progress (standard error for the
// command), and a [Summary]: rates over the measured window, latency
// percentiles in milliseconds from log-linear histograms ([Histogram],
// under 1% error), errors (err replies by code, disconnects by close code,
// resets, deliveries that never arrived), and for idle the server's usage.
package loadtest
