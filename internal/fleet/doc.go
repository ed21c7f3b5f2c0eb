// Package fleet joins a run's [fleet.NAME] limits: one
// redisbucket.Bucket per fleet, shared by every worker of the process that
// names it and, through Redis, by every process of the fleet.
package fleet
