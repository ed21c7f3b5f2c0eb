package natspacer

// ProgressHook is a ConsumeOption for tests only: f runs each time Consume
// is about to send InProgress for a message it found unfinished, just
// before sending it; done reports whether the message's outcome has been
// set.
func ProgressHook(f func(done func() bool)) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		c.progressHook = f
		return nil
	})
}

// OutcomeHook is a ConsumeOption for tests only: f runs each time a
// handler has returned, just before its outcome is set and sent.
func OutcomeHook(f func()) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		c.outcomeHook = f
		return nil
	})
}
