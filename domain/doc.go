// Package domain holds Tone's entities, business rules and store interfaces.
//
// Everything a request may do is decided here, once: token rotation, role
// checks, membership rules, audit. The packages around it only carry requests
// in (http, realtime) or store and load rows (domain/postgres, domain/memory);
// domain imports none of them.
//
// # Services and stores
//
// [Service] is the entry point. Its methods take the acting user (an [Actor])
// and run each use case inside one store transaction ([Store.InTx]), so the
// change and its audit event commit together or not at all.
//
// # Errors
//
// Every error a service returns carries one of the codes of [Error]
// (EInvalid, ENotFound, ...). Use [ErrorCode] and [ErrorMessage] to read them;
// anything without a code is internal and its detail must not reach users.
//
// # Access
//
// Roles are per workspace and per project (owner, admin, editor, viewer); what
// each role may do is the data in [Permissions]. A user who is not a member of
// a workspace or project gets ENotFound for anything inside it, so that its
// existence does not leak.
//
// Services are safe for concurrent use.
package domain
