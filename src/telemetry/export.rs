//! Prometheus text exposition (SPEC §5) through prometheus-client's collector.
// (filled in by the telemetry work)
