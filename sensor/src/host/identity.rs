//! The node and pod the agent reports as. On Kubernetes the DaemonSet passes them from the
//! downward API (`SENSOR_NODE_NAME`, `SENSOR_POD_NAME`, `SENSOR_POD_NAMESPACE`): inside a pod,
//! the hostname is the pod's, not the node's, and a SIEM needs the node.

use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
}

impl Identity {
    fn from(
        node: Option<String>,
        pod: Option<String>,
        namespace: Option<String>,
        hostname: impl FnOnce() -> String,
    ) -> Self {
        // Attacker-free values, but still bounded and printable: they end up in every alert.
        let clean = |v: Option<String>| {
            v.map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(253)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty())
        };
        Self {
            node: clean(node).unwrap_or_else(hostname),
            pod: clean(pod),
            namespace: clean(namespace),
        }
    }
}

/// Read once: the environment does not change under a running agent.
pub fn get() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        Identity::from(
            var("SENSOR_NODE_NAME"),
            var("SENSOR_POD_NAME"),
            var("SENSOR_POD_NAMESPACE"),
            crate::output::format::system_hostname,
        )
    })
}

/// Stamps an alert with where it was seen (kept if a rule already set them).
pub fn stamp(alert: &mut crate::alert::Alert) {
    let id = get();
    alert
        .fields
        .entry("node")
        .or_insert_with(|| id.node.clone().into());
    if let Some(pod) = &id.pod {
        alert
            .fields
            .entry("sensor_pod")
            .or_insert_with(|| pod.clone().into());
    }
    if let Some(ns) = &id.namespace {
        alert
            .fields
            .entry("sensor_namespace")
            .or_insert_with(|| ns.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_wins_over_hostname_and_values_are_cleaned() {
        let id = Identity::from(
            Some("node-\u{1b}[31ma".into()),
            Some("sensor-x".into()),
            Some(String::new()),
            || "pod-hostname".into(),
        );
        assert_eq!(id.node, "node-[31ma");
        assert_eq!(id.pod.as_deref(), Some("sensor-x"));
        assert_eq!(id.namespace, None);
        let id = Identity::from(None, None, None, || "host-1".into());
        assert_eq!(id.node, "host-1");
        let long = "n".repeat(1000);
        assert_eq!(
            Identity::from(Some(long), None, None, String::new)
                .node
                .len(),
            253
        );
    }
}
