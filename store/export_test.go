package store

// Lookalikes is the generated table, for the tests of package store_test.
var Lookalikes = lookalikes
