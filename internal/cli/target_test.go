package cli

import "testing"

func TestRedisAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, addr, password string
		db                 int
		bad                bool
	}{
		{in: "127.0.0.1:6379", addr: "127.0.0.1:6379"},
		{in: "redis://127.0.0.1:6380", addr: "127.0.0.1:6380"},
		{in: "redis://:s3cret@10.0.0.5:6379/2", addr: "10.0.0.5:6379", password: "s3cret", db: 2},
		{in: "http://127.0.0.1:6379", bad: true},
		{in: "redis://127.0.0.1:6379/x", bad: true},
	} {
		addr, pw, db, err := redisAddr(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("redisAddr(%q) = %q, nil; want an error", tt.in, addr)
			}
			continue
		}
		if err != nil || addr != tt.addr || pw != tt.password || db != tt.db {
			t.Errorf("redisAddr(%q) = %q, %q, %d, %v; want %q, %q, %d", tt.in, addr, pw, db, err, tt.addr, tt.password, tt.db)
		}
	}
}
