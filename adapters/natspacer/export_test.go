package natspacer

// ProgressHook is an Option for tests only: f runs each time Consume is
// about to send InProgress for a message it found unfinished, just before
// sending it; done reports whether the message's outcome has been set.
func ProgressHook(f func(done func() bool)) Option {
	return func(c *config) error {
		c.progressHook = f
		return nil
	}
}
