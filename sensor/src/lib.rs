//! The sensor agent. One module per noun of the product:
//!
//! - `probes`: load and attach the eBPF programs, read the ring, decode records;
//! - `enrich`: process table, cgroup → container/unit attribution, /proc snapshots;
//! - `pipeline`: decode → enrich → detect, synchronous and testable without a kernel;
//! - `rules`: the rule language (YAML, Falco-like conditions, ATT&CK table); `detect`: rules
//!   over events, alert folding, which rule files run;
//! - `event`, `alert`: the data model (ECS-style events, alerts);
//! - `output`: the alert log and human renderings; `escape`: terminal-safe strings;
//! - `health`, `stats`: loss counters and the drop alert;
//! - `respond`: containment, playbooks and evidence bundles under chain of custody;
//! - `signing`: signed rule, indicator and profile bundles, and who must use them;
//! - `api`: the control socket; `remote`: the HTTPS API, tokens and the dashboard;
//!   `agent`: `sensor run`; `cli`: the command line;
//! - `config`, `clock`.

pub mod agent;
pub mod alert;
pub mod api;
pub mod audit;
pub mod baseline;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod detect;
pub mod dlp;
pub mod enrich;
pub mod escape;
pub mod event;
pub mod health;
pub mod host;
pub mod ioc;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod profile;
pub mod remote;
pub mod respond;
pub mod rules;
pub mod selftest;
pub mod signing;
pub mod stats;
pub mod tamper;
