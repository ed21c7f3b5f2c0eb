// Package adaptertest holds, in its subpackages, the tests of the adapters
// (asynqpacer, natspacer, redisbucket, natsbucket) against real servers: Redis servers
// and in-process nats-servers that internal/testenv starts for each test.
// They are external tests of the adapters' exported API, kept in the root
// module so that the adapters' module requires nothing a library user does
// not need (see docs/modules.md).
package adaptertest
