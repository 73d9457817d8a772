//! Sliding windows over cumulative readings: the controller diffs a version's
//! `Reading` every `analysis.interval` into a ring of slots.
// (filled in by the telemetry work)
