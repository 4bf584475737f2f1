package crdt_test

import (
	"bytes"
	"fmt"

	"github.com/tone-ai/tone/crdt"
)

// Two replicas edit the same rectangle at once, offline, then exchange their
// updates. Concurrent writes to different properties both survive; the two
// writes to "fill" resolve the same way on both sides.
func ExampleDoc_Merge() {
	alice := crdt.NewDoc(1, nil)
	bob := crdt.NewDoc(2, nil)

	rect, created, _ := alice.Create("rect", crdt.Root, "", crdt.Props{
		"x": crdt.Number(10), "y": crdt.Number(20), "w": crdt.Number(100), "h": crdt.Number(50),
	})
	if err := bob.Apply(created); err != nil {
		panic(err)
	}

	// Offline: Alice moves the rectangle and colours it red; Bob colours it blue
	// and resizes it.
	a1, _ := alice.Set(rect, crdt.Props{"x": crdt.Number(300), "fill": crdt.String("#ff0000")})
	b1, _ := bob.Set(rect, crdt.Props{"w": crdt.Number(250), "fill": crdt.String("#0000ff")})

	// Back online: Alice gets Bob's update; Bob merges Alice's whole state.
	if err := alice.Apply(b1); err != nil {
		panic(err)
	}
	if err := bob.Merge(alice); err != nil {
		panic(err)
	}
	_ = a1 // already contained in what Bob merged

	for _, doc := range []*crdt.Doc{alice, bob} {
		e, _ := doc.Element(rect)
		fmt.Println(e.Type, "x:", e.Props["x"], "w:", e.Props["w"], "fill:", e.Props["fill"])
	}
	fmt.Println("same snapshot:", bytes.Equal(alice.Snapshot(), bob.Snapshot()))
	// Output:
	// rect x: 300 w: 250 fill: "#0000ff"
	// rect x: 300 w: 250 fill: "#0000ff"
	// same snapshot: true
}
