// Package dispatch hands records that do not come from a handler's own topic
// (due retries, reprocessed DLQ records) to exactly one named handler of a
// Watermill router, through the router's full middleware chain.
//
// A Dispatcher is a message.Subscriber whose "topics" are handler IDs. For
// every handler the stack registers a companion router handler subscribed to
// the Dispatcher under the handler's ID; Deliver sends one message to it and
// waits until the router acknowledged or rejected it.
package dispatch
