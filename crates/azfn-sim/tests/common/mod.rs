//! What the targeted engine tests share: a runtime on tokio's paused clock (the simulation's
//! virtual time) and the epoch its clock starts at.

/// A current-thread runtime whose clock is paused: sleeps and storage delays take no real time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

/// The virtual clock's start: 2026-01-01T00:00:00Z.
pub fn epoch() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone as _;
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}
