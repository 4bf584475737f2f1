// Package flag evaluates feature flags. It is pure: no I/O, no clock, no
// randomness, and it imports nothing of Tone's, so that the same definitions
// give the same answers on every node and in every SDK that follows
// docs/flags.md.
//
//	f := &flag.Flag{Key: "new-editor", Type: flag.Boolean, Enabled: true, ...}
//	if err := f.Validate(); err != nil { ... }
//	r := flag.Evaluate(f, flag.Context{"targetingKey": "user-42", "plan": "pro"}, segments)
//	// r.Value, r.Variant, r.Reason
//
// # Definitions
//
// A [Flag] has a type (boolean, string, number or JSON), named variants
// holding values of that type, an ordered list of targeting [Rule]s, a
// default [Serve] used when no rule applies, and an off variant served while
// the flag is disabled. A rule holds [Condition]s on the attributes of the
// evaluation [Context] (all must hold) and what it serves: one variant, or a
// [Rollout] that lets in a percentage of stickiness values and splits them
// among weighted variants. A [Segment] is a reusable set of rules; a
// condition with the in_segment operator asks whether the context matches
// one.
//
// # Rollouts
//
// [Bucket] maps (seed, flag key, salt, stickiness value) to 0..99999 by
// SHA-256, so a value's bucket never changes while the flag's key and salt
// stay. A rollout of p percent lets in the buckets below p*1000 of the seed
// [RolloutSeed]: raising p keeps everyone already in. The variant of those
// let in comes from the bucket of the separate seed [VariantSeed], so
// changing the split does not change who is in.
//
// Everything here is safe for concurrent use as long as the definitions are
// not changed while they are evaluated.
package flag
