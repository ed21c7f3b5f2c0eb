package natspacer

// ConsumeStats counts what a Consumption did.
type ConsumeStats struct {
	Fetches     uint64 // Fetch requests sent to the server (a Fetch that failed before sending is not counted)
	FetchErrors uint64 // fetches that failed, before sending or in the answer (logged, retried unless terminal)
	Received    uint64 // messages received
	Acked       uint64 // messages acked after their handler succeeded
	Nakked      uint64 // messages nakked with the Backoff delay after a handler error
	Throttled   uint64 // messages nakked with the retry-after delay after a throttled outcome
	Canceled    uint64 // messages nakked for immediate redelivery because ctx ended or Stop was called, Unstarted included
	Unstarted   uint64 // of Canceled, messages whose handler never started: their permits were given back (Permit.Cancel)
	Terminated  uint64 // messages sent Term after a handler error wrapping ErrTerminate
	HeldInPlace uint64 // throttled outcomes retried in the handler's slot, not nakked: MaxDeliver left the message at most one more delivery
	Exhausted   uint64 // messages nakked on their last delivery (MaxDeliver): a failure, or a stop while held; the server does not deliver them again (logged)
	Progress    uint64 // InProgress signals sent
	AckErrors   uint64 // acks, naks and InProgress that failed to send (logged)
	Returned    uint64 // permits given back with no message (Permit.Cancel): a Fetch came back short, failed, or the consumption stopped
	InFlight    int    // messages received and not finished
	Permits     int    // permits held and not yet matched to a message
	Waiting     int    // of InFlight, messages waiting for a handler
	Window      int    // messages let run ahead of the handlers now (permits held and Waiting): see Consume
}

// Stats returns a snapshot of the consumption's counters.
func (c *Consumption) Stats() ConsumeStats {
	c.mu.Lock()
	inFlight, permits, window := int(c.busy.Load()), len(c.pool)+c.out, c.window
	c.mu.Unlock()
	return ConsumeStats{
		Fetches: c.fetches.Load(), FetchErrors: c.fetchErrors.Load(),
		Received: c.received.Load(), Acked: c.acked.Load(), Nakked: c.nakked.Load(),
		Throttled: c.throttled.Load(), Canceled: c.canceled.Load(), Progress: c.progress.Load(),
		AckErrors: c.ackErrors.Load(), Returned: c.returned.Load(), Terminated: c.terminated.Load(),
		Unstarted: c.unstarted.Load(), HeldInPlace: c.heldInPlace.Load(), Exhausted: c.exhausted.Load(),
		InFlight: inFlight, Permits: permits, Waiting: len(c.work), Window: window,
	}
}
