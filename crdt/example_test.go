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

// Two people type into the same sticky note at once. Each keystroke is an
// update like any other; the replicas apply each other's in whatever order
// they arrive and end with the same text, each person's words kept whole.
func ExampleDoc_InsertText() {
	alice := crdt.NewDoc(1, nil)
	bob := crdt.NewDoc(2, nil)

	note, created, _ := alice.Create("sticky", crdt.Root, "", crdt.Props{"fill": crdt.String("#ffee00")})
	hello, _ := alice.InsertText(note, "content", 0, "Hello!")
	for _, u := range [][]byte{created, hello} {
		if err := bob.Apply(u); err != nil {
			panic(err)
		}
	}

	// At the same moment, both type before the "!", key by key.
	var fromAlice, fromBob [][]byte
	for i, r := range ", Bob" {
		u, _ := alice.InsertText(note, "content", 5+i, string(r))
		fromAlice = append(fromAlice, u)
	}
	for i, r := range " there" {
		u, _ := bob.InsertText(note, "content", 5+i, string(r))
		fromBob = append(fromBob, u)
	}
	del, _ := bob.DeleteText(note, "content", 11, 1) // Bob removes the "!"
	fromBob = append(fromBob, del)

	// Bob's updates reach Alice in reverse order; Alice's reach Bob in order.
	for i := len(fromBob) - 1; i >= 0; i-- {
		if err := alice.Apply(fromBob[i]); err != nil {
			panic(err)
		}
	}
	for _, u := range fromAlice {
		if err := bob.Apply(u); err != nil {
			panic(err)
		}
	}
	fmt.Printf("%q\n", alice.Text(note, "content"))
	fmt.Printf("%q\n", bob.Text(note, "content"))
	fmt.Println("same snapshot:", bytes.Equal(alice.Snapshot(), bob.Snapshot()))

	// Alice undoes her last keystroke ("b"); it is an update too.
	undo, _ := alice.Undo()
	if err := bob.Apply(undo); err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", bob.Text(note, "content"))
	// Output:
	// "Hello, Bob there"
	// "Hello, Bob there"
	// same snapshot: true
	// "Hello, Bo there"
}
