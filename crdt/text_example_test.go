package crdt_test

import (
	"fmt"

	"github.com/tone-ai/tone/crdt"
)

// Two people type into the same note at once; each replica applies the
// other's operations, in whatever order they arrive, and both end with the
// same text, each run of typing kept whole.
func ExampleText() {
	alice := new(crdt.Text).EditAs(1)
	bob := new(crdt.Text).EditAs(2)

	op, _ := alice.Insert(0, "Hello!")
	_ = bob.Apply(op)

	// Concurrent edits at the same place.
	a1, _ := alice.Insert(5, ", Bob")
	b1, _ := bob.Insert(5, " there")
	b2, _ := bob.Delete(11, 1) // the "!"

	_ = alice.Apply(b2, b1) // any order will do
	_ = bob.Apply(a1)
	fmt.Println(alice.String())
	fmt.Println(bob.String())

	// A stable cursor after "Hello" survives edits before it.
	cur, _ := alice.Cursor(5)
	op, _ = bob.Insert(0, "Oh. ")
	_ = alice.Apply(op)
	pos, _ := alice.CursorPos(cur)
	fmt.Println(pos, alice.String()[:pos])
	// Output:
	// Hello, Bob there
	// Hello, Bob there
	// 9 Oh. Hello
}
