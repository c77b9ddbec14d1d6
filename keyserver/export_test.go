package keyserver

// MinAtomicBatch is minAtomicBatch, for the tests of package keyserver_test.
const MinAtomicBatch = minAtomicBatch
