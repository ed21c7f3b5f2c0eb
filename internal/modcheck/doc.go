// Package modcheck holds a test of the repository's module layout (see
// docs/modules.md): a program that imports the library gets none of what
// only the CLI, the benches and the browser test use.
package modcheck
