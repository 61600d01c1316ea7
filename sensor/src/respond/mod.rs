//! Containment, playbooks and evidence.
//!
//! ```text
//! pipeline (alert + event) ──playbook trigger──▶ responder thread ◀── sensor contain/release
//!                                                  │ guards (pid 1, the sensor, protected, rate)
//!                                                  ├─ cgroup: freeze / thaw / kill / move
//!                                                  ├─ kernel maps: isolation, exec deny list
//!                                                  ├─ quarantine under <state>/respond/quarantine
//!                                                  ├─ evidence bundles (signed, custody log)
//!                                                  └─ audit.jsonl (hash-chained)
//! ```

pub use crate::audit;
pub mod bundle;
pub mod cgroup;
pub mod config;
pub mod evidence;
pub mod guard;
pub mod history;
pub mod playbook;
pub mod quarantine;
pub mod report;
pub mod responder;
pub mod target;
