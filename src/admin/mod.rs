//! The admin listener: health, metrics, the status page and the control API (SPEC §4).
// (filled in by the telemetry and controller work)
