// Package testutil holds what a test of code built on package pacer
// needs, in the manner of net/http/httptest and testing/fstest:
//
//   - Clock, a fake pacer.Clock whose time moves only when the test moves
//     it, so that bucket, pacer and controller tests assert exact results
//     without sleeping;
//   - TestProbe, the conformance suite that every backlog probe
//     (pacer.Probe) passes: an adapter for a new queue backend runs it
//     against a ProbeQueue of its own, parameterised by ProbeFeatures;
//   - TestConsumer, the conformance suite that every paced consumer
//     passes (asynqpacer's Middleware, natspacer's Consume, a plugin
//     Source of package worker): every job handled once with its outcome
//     fed back, no more running than MaxInFlight, given-back jobs
//     handled again, a stop that waits and loses nothing; a new consumer
//     runs it against a ConsumerQueue of its own, parameterised by
//     ConsumerFeatures.
//
// It imports the standard library and package pacer only: no server, no
// test framework.
package testutil
