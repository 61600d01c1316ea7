//! How the agent fits into the host that runs it: the service manager (sd_notify readiness
//! and watchdog), the node and pod it reports as, and the privileges it keeps.

pub mod caps;
pub mod identity;
pub mod notify;
