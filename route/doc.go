// Package route provides the topic of every event type, the subscription
// pattern matcher, and the Batch that carries routed events from ingest to a
// fan-out backend.
//
// Topics form a fixed table known at build time (Topics), so a subscription
// compiles once into a Set, a bitset over TopicIDs; matching an event is then
// one bit test whatever the number of subscriptions, and a fan-out can keep a
// subscriber list per topic.
//
// A Batch is reference counted. Its creator owns one reference; Publisher
// takes that reference over when Publish returns nil; whoever holds a
// reference may read the events but never change them (the typed views that
// the owner handed to the consumers with FillOnRead excepted: the first
// consumer's EnsureTyped writes them); the last Release hands the batch back
// to its creator's free function for reuse.
package route
