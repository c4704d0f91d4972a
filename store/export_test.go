package store

// Lookalikes is the generated table, for the tests of package store_test.
var Lookalikes = lookalikes

// CheckRunes and PlainASCII are ValidateName's two checks of a name's
// characters, the full one and its ASCII shortcut.
var (
	CheckRunes = checkRunes
	PlainASCII = plainASCII
)
