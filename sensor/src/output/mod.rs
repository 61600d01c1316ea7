//! Where alerts and events go: the local alert log, and human renderings.

pub mod alert_log;
pub mod event_line;
